"""A set of SHA-256 hashes that costs 32 bytes an entry and answers a batch at a time.

A writer must know which of a table's record hashes the store already holds. As a Python set of
bytes that is ~100 bytes an entry (and more while it is built): 1,000,000 records would spend a
few hundred MB on the question alone. Here the hashes sit in one sorted numpy array and a batch
of candidates is answered with one ``searchsorted``; a prefix match is confirmed on all 32 bytes,
so the answer is exact.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

HASH_LEN = 32


def _rows(hashes: list[bytes]) -> np.ndarray:
    if not hashes:
        return np.empty((0, HASH_LEN), np.uint8)
    return np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, HASH_LEN)


def _prefix(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows[:, :8]).view(">u8").ravel()


class HashSet:
    def __init__(self, rows: np.ndarray | None = None) -> None:
        rows = np.empty((0, HASH_LEN), np.uint8) if rows is None else rows
        order = np.argsort(_prefix(rows), kind="stable")
        self._rows = rows[order]
        self._prefix = _prefix(self._rows)

    @classmethod
    def from_arrow(cls, arr: pa.Array | pa.ChunkedArray) -> HashSet:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.binary())
        arr = arr.drop_null()
        if len(arr) == 0:
            return cls()
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
        if offsets[-1] - offsets[0] != HASH_LEN * len(arr):
            return cls.from_list(arr.to_pylist())
        data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        return cls(data.reshape(-1, HASH_LEN).copy())

    @classmethod
    def from_list(cls, hashes: list[bytes]) -> HashSet:
        return cls(_rows([h for h in hashes if len(h) == HASH_LEN]).copy())

    def __len__(self) -> int:
        return len(self._rows)

    def union(self, other: HashSet | list[bytes]) -> HashSet:
        more = other._rows if isinstance(other, HashSet) else _rows(other)
        if len(more) == 0:
            return self
        return HashSet(np.concatenate([self._rows, more]))

    def union_buffer(self, buf: bytes) -> HashSet:
        """The union with hashes given as one buffer of 32-byte hashes."""
        if not buf:
            return self
        return HashSet(np.concatenate([self._rows, np.frombuffer(buf, np.uint8).reshape(-1, HASH_LEN)]))

    def contains_many(self, hashes: list[bytes]) -> np.ndarray:
        """A boolean per hash: is it in the set?"""
        q = _rows(hashes)
        out = np.zeros(len(q), bool)
        n = len(self._prefix)
        if n == 0 or len(q) == 0:
            return out
        qp = _prefix(q)
        idx = np.searchsorted(self._prefix, qp)
        hit = idx < n
        hit[hit] = self._prefix[idx[hit]] == qp[hit]
        hits = np.flatnonzero(hit)
        out[hits] = (self._rows[idx[hits]] == q[hits]).all(axis=1)  # confirm on all 32 bytes
        for i in hits[~out[hits]]:  # same prefix, other hash: look at the other equal prefixes
            j = idx[i] + 1
            while j < n and self._prefix[j] == qp[i]:
                if np.array_equal(self._rows[j], q[i]):
                    out[i] = True
                    break
                j += 1
        return out

    def __contains__(self, h: bytes) -> bool:
        return bool(self.contains_many([h])[0])
