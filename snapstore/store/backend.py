"""Where objects live. The store only needs a handful of operations on immutable, named objects,
so an S3 backend can implement the same protocol later.

Objects are never modified: ``put`` is create-only and idempotent (an existing object with the same
name already has the same content, because names are content hashes), and only prune deletes.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from snapstore.errors import StoreError


class BackendError(StoreError):
    """A backend could not read or write an object."""


class ObjectMissing(BackendError):
    pass


class Backend(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def put_stream(self, key: str, fileobj: BinaryIO) -> int: ...
    def put_file(self, key: str, path: str | os.PathLike) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_range(self, key: str, offset: int, length: int) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def list(self, prefix: str) -> Iterator[tuple[str, int]]: ...
    def delete(self, key: str) -> None: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend:
    """A folder. Writes go to a temp file in the target folder, are fsynced, then hard-linked to
    their name (which fails rather than replaces if the name exists) and the folder is fsynced."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid object key {key!r}")
        return self.root / key

    def _publish(self, tmp: Path, final: Path) -> None:
        try:
            os.link(tmp, final)
        except FileExistsError:
            pass  # same name = same content: the object is already there
        finally:
            tmp.unlink(missing_ok=True)
        if self.fsync:
            _fsync_dir(final.parent)

    def _tmp_for(self, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"

    def put(self, key: str, data: bytes) -> None:
        final = self._path(key)
        if final.exists():
            return
        tmp = self._tmp_for(final)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                raise BackendError(f"no space left on device while writing {key}") from e
            raise
        self._publish(tmp, final)

    def put_stream(self, key: str, fileobj: BinaryIO) -> int:
        final = self._path(key)
        tmp = self._tmp_for(final)
        n = 0
        try:
            with open(tmp, "wb") as f:
                while chunk := fileobj.read(1 << 20):
                    f.write(chunk)
                    n += len(chunk)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._publish(tmp, final)
        return n

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        """Publish a finished local file under ``key`` (hard link when on the same filesystem)."""
        final = self._path(key)
        if final.exists():
            return
        tmp = self._tmp_for(final)
        try:
            os.link(path, tmp)
        except OSError:
            with open(path, "rb") as src:
                self.put_stream(key, src)
            return
        self._publish(tmp, final)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise ObjectMissing(key) from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError as e:
            raise ObjectMissing(key) from e

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as e:
            raise ObjectMissing(key) from e

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as e:
            raise ObjectMissing(key) from e

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix)
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                p = Path(dirpath) / name
                yield p.relative_to(self.root).as_posix(), p.stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
