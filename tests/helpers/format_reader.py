"""A reader of snapstore stores written from docs/FORMAT.md alone, to keep that document true.

It imports zstandard, msgpack, pyarrow, cryptography and the standard library, never snapstore: every
structure it decodes, and every rule it checks, is one the document states (the section is named where
it is used). tests/unit/test_format_reader.py compares what it reads with what the library reads, record for
record, so a change to the writer that the document does not describe fails there.

Only what format 3 and 4 stores need is here (record frames named by frame id, column frames, table
manifests v2/v3, encryption); formats 1 and 2 are out of its scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pyarrow as pa
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: FORMAT.md, "Packs": a pack ends with trailer_len:u32le | crc32:u32le | "SSPK" | version:u8.
TAIL = struct.Struct("<II4sB")
#: FORMAT.md, "Column frames": a column frame's stored bytes start with these 4 bytes.
COLUMN_MAGIC = b"SSC\x01"
#: FORMAT.md, "Standalone objects": a new full manifest is written when the chain reaches 64 deltas...
MAX_DELTAS = 63
#: ... or when the entries of its deltas would exceed the table's records, or this floor.
CHAIN_ENTRIES_FLOOR = 1000


class FormatViolation(AssertionError):
    """The store breaks a rule docs/FORMAT.md states."""


def check(cond: bool, rule: str) -> None:
    if not cond:
        raise FormatViolation(rule)


@dataclass
class Frame:
    pack: Path
    offset: int
    clen: int
    dict_hash: bytes | None
    n_records: int


@dataclass
class Table:
    """One table of one snapshot: {record id: canonical line} and the manifest chain's shape."""

    records: dict[str, bytes]
    deltas: int
    chain_entries: int = 0


@dataclass
class FormatReader:
    root: Path
    password: str | None = None
    config: dict = field(init=False)
    _aead: AESGCM | None = field(init=False, default=None)
    _mac: bytes | None = field(init=False, default=None)
    _frames: dict[bytes, Frame] = field(init=False, default_factory=dict)
    _lines: dict[bytes, bytes] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.config = json.loads((self.root / "config.json").read_bytes())
        # "config.json": refuse a store whose format, version or canon is unknown
        check(self.config.get("format") == "snapstore", "config.json: format is 'snapstore'")
        check(self.config.get("version") in (3, 4), "config.json: version 3 or 4 (this reader's scope)")
        check(self.config.get("canon") == "orjson-sorted-v1", "config.json: canon orjson-sorted-v1")
        if "encryption" in self.config:
            self._open_keys()
        self._index_packs()

    # -- Encryption ----------------------------------------------------------------------------

    def _open_keys(self) -> None:
        """FORMAT.md, "Master key and key files": try the key files oldest first."""
        check(self.password is not None, "an encrypted store needs its password")
        files = []
        for path in (self.root / "keys").iterdir():
            data = path.read_bytes()
            check(hashlib.sha256(data).hexdigest() == path.name, "keys/<sha256>: named by its bytes")
            files.append(json.loads(data))
        for kf in sorted(files, key=lambda k: k["created"]):
            check(kf["kdf"] == "scrypt" and kf["N"] >= 2 ** 15, "key file: scrypt, N >= 2^15")
            wrap = hashlib.scrypt(self.password.encode(), salt=base64.b64decode(kf["salt"]), n=kf["N"],
                                  r=kf["r"], p=kf["p"], maxmem=256 << 20, dklen=32)
            blob = base64.b64decode(kf["data"])
            try:
                master = json.loads(AESGCM(wrap).decrypt(blob[:12], blob[12:], None))
            except Exception:  # noqa: BLE001 - another password's key file
                continue
            self._aead = AESGCM(base64.b64decode(master["encrypt"]))
            self._mac = base64.b64decode(master["mac"])
            return
        raise FormatViolation("no key file opens with this password")

    def unseal(self, data: bytes) -> bytes:
        """FORMAT.md, "Sealed messages": nonce (12) | ciphertext | tag (16); plain stores: as is."""
        if self._aead is None:
            return data
        return self._aead.decrypt(data[:12], data[12:], None)

    def blob_id(self, raw: bytes) -> bytes:
        """FORMAT.md, "Ids": SHA-256 of the raw bytes, or HMAC-SHA256 under the master key."""
        if self._mac is None:
            return hashlib.sha256(raw).digest()
        return hmac.digest(self._mac, raw, "sha256")

    # -- objects ------------------------------------------------------------------------------

    def _named(self, path: Path) -> bytes:
        data = path.read_bytes()
        check(hashlib.sha256(data).hexdigest() == path.name, f"{path}: sha256sum equals the file's name")
        return data

    def object(self, name: str) -> bytes:
        """FORMAT.md, "Layout": objects/<aa>/<sha256>, unsealed."""
        return self.unseal(self._named(self.root / "objects" / name[:2] / name))

    def doc(self, name: str) -> dict:
        """A manifest (or any msgpack object): zstd(msgpack(doc))."""
        return msgpack.unpackb(_unzstd(self.object(name)), raw=False)

    def commits(self) -> list[dict]:
        """FORMAT.md, "Commit objects": JSON, named by the SHA-256 of its (sealed) bytes."""
        out = []
        for path in (self.root / "snapshots").iterdir():
            doc = json.loads(self.unseal(self._named(path)))
            check(doc.get("type") == "snapshot", "a commit object's type is 'snapshot'")
            out.append(dict(doc, _id=path.name))
        return sorted(out, key=lambda d: (d["time"], d["_id"]))

    # -- packs --------------------------------------------------------------------------------

    def _index_packs(self) -> None:
        """FORMAT.md, "Packs": read the last 13 bytes, then trailer_len bytes before them; check the crc."""
        for path in sorted((self.root / "packs").glob("*/*")):
            pack = self._named(path)
            trailer_len, crc, magic, version = TAIL.unpack(pack[-TAIL.size:])
            check(magic == b"SSPK", "a pack ends with 'SSPK'")
            check(version == self.config["version"], "a pack's version is the store's format version")
            trailer = pack[-TAIL.size - trailer_len:-TAIL.size]
            check(zlib.crc32(trailer) == crc, "crc32 of the (sealed) trailer")
            index = msgpack.unpackb(_unzstd(self.unseal(trailer)), raw=False)
            dicts = index["dicts"]
            for fid, offset, clen, _kind, dict_index, n_records in index.get("frames", []):
                check(hashlib.sha256(pack[offset:offset + clen]).digest() == fid,
                      "frame_id = sha256(pack[offset:offset + clen])")
                self._frames[fid] = Frame(path, offset, clen, dicts[dict_index] if dict_index >= 0 else None,
                                          n_records)

    def frame_lines(self, fid: bytes) -> list[bytes]:
        """A record frame's lines (each a canonical record, without its newline)."""
        check(fid in self._frames, "a manifest's frames are in the trailers' frames lists")
        f = self._frames[fid]
        with open(f.pack, "rb") as fh:
            fh.seek(f.offset)
            plain = self.unseal(fh.read(f.clen))
        if plain[:4] == COLUMN_MAGIC:
            check(f.dict_hash is None, "a column frame's dict_index is -1")
            text = inflate(plain[4:])
        elif f.dict_hash is not None:
            d = zstandard.ZstdCompressionDict(self.object(f.dict_hash.hex()))
            text = zstandard.ZstdDecompressor(dict_data=d).decompress(plain)
        else:
            text = _unzstd(plain)
        check(text.endswith(b"\n"), "every record of a frame is followed by a newline")
        lines = text[:-1].split(b"\n")
        check(len(lines) == f.n_records, "a frame holds n_records lines")
        for line in lines:
            self._lines[self.blob_id(line)] = line
        return lines

    def _line_of(self, h: bytes) -> bytes:
        """A record held already (an `arrow` entry): found by its hash among the frames' lines."""
        if h not in self._lines:
            for fid in self._frames:
                self.frame_lines(fid)
        check(h in self._lines, "every hash a manifest lists is a stored record")
        return self._lines[h]

    # -- manifests ----------------------------------------------------------------------------

    def table(self, manifest: str) -> Table:
        """FORMAT.md, "table manifest": follow `parent` to a full manifest, apply the deltas forward."""
        chain = []
        name: str | None = manifest
        while name is not None:
            doc = self.doc(name)
            check(doc.get("type") == "table-manifest", "a manifest's type is 'table-manifest'")
            chain.append(doc)
            name = None if doc["full"] else doc["parent"]
        chain.reverse()
        state: dict[str, bytes] = {}
        entries = 0
        for depth, doc in enumerate(chain):
            n = self._apply(doc, state)
            if depth:
                entries += n
                # "a new full manifest when the chain reaches 64 deltas or its deltas' entries would
                # exceed max(the table's records, 1,000)"
                check(depth <= MAX_DELTAS, f"a chain has at most {MAX_DELTAS} deltas after its full manifest")
                check(entries <= max(len(state), CHAIN_ENTRIES_FLOOR),
                      "a chain's delta entries are at most max(the table's records, 1,000)")
        return Table(state, len(chain) - 1, entries)

    def _apply(self, doc: dict, state: dict[str, bytes]) -> int:
        """One manifest's entries onto `state`: its frames' records, then its `arrow` rows."""
        if doc["full"]:
            state.clear()
        seen: set[str] = set()
        for fid in doc.get("frames", []):
            for line in self.frame_lines(fid):
                rid = json.loads(line)["id"]  # "its record id the value of the last key"
                check(line.endswith(b',"id":' + json.dumps(rid).encode() + b"}"), "the id is the last key")
                state[rid] = line
                seen.add(rid)
        rows = pa.ipc.open_stream(doc["arrow"]).read_all()
        ids = rows.column("record_id").to_pylist()
        check(ids == sorted(ids), "a manifest's arrow rows are sorted by id")
        for rid, h in zip(ids, rows.column("hash").to_pylist(), strict=True):
            check(rid not in seen, "no record is both in a manifest's frames and its arrow rows")
            if h is None:
                check(not doc["full"], "a full manifest has no deletions")
                state.pop(rid, None)
            else:
                line = self._line_of(h)
                check(self.blob_id(line) == h, "a record's hash is the id of its canonical bytes")
                state[rid] = line
        return len(seen) + len(ids)

    def snapshot_tables(self, commit: dict) -> dict[tuple[str, str], Table]:
        """Every table of one snapshot (FORMAT.md, "Reading a snapshot without snapstore")."""
        # "a commit object is written only after every object it reaches exists"
        for name in commit["packs"]:
            check((self.root / "packs" / name[:2] / name).is_file(), f"pack {name[:12]} the commit names exists")
        return {(b["base_id"], t["table_id"]): self.table(t["manifest"])
                for b in commit["bases"] for t in b["tables"]}


def inflate(body: bytes) -> bytes:
    """FORMAT.md, "Column frames": the NDJSON frame a column frame decodes to."""
    shapes, created, ids, columns, shape_of = msgpack.unpackb(_unzstd(body), raw=False)
    created_vals = created.split(b"\n")
    id_vals = ids.split(b"\n")
    cols = {fid: iter(vals.split(b"\n")) for fid, vals in columns}
    # "created, ids and each column list the records in shape order: a stable sort of the frame
    # positions by shape_of"
    order = sorted(range(len(shape_of)), key=lambda p: shape_of[p])
    lines: list[bytes] = [b""] * len(shape_of)
    for n, p in enumerate(order):
        cells = [json.dumps(k).encode() + b":" + next(cols[k]) for k in shapes[shape_of[p]]]
        lines[p] = (b'{"createdTime":' + created_vals[n] + b',"fields":{' + b",".join(cells)
                    + b'},"id":' + id_vals[n] + b"}")
    for fid, it in cols.items():
        check(next(it, None) is None, f"column {fid} holds a value for each record whose shape has it")
    return b"".join(line + b"\n" for line in lines)


def _unzstd(data: bytes) -> bytes:
    """A zstd frame (its content size may be absent from the header: decompress as a stream)."""
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)
