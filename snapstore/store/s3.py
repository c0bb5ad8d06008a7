"""The store's objects in an S3 bucket (AWS S3 or any S3-compatible server, e.g. SeaweedFS).

Same protocol and the same key names as ``LocalBackend``, under an optional prefix:
``s3://bucket/prefix`` holds ``prefix/config.json``, ``prefix/packs/<aa>/<sha256>`` and so on.

- Writes are create-only: ``PutObject`` with ``If-None-Match: *``. A 412 (PreconditionFailed)
  means the name exists, and names are content hashes, so the object is already there. Some
  servers answer 409 (ConditionalRequestConflict) to a concurrent race on the same name: retried.
- Files of ``MULTIPART_THRESHOLD`` or more go up as multipart uploads (``MULTIPART_PART`` parts);
  the completion carries ``If-None-Match: *`` too.
- ``open`` returns a seekable reader doing ranged GETs with a read-ahead window, so streaming a
  large attachment or reading many blobs of one pack costs a handful of requests.
- Endpoint, region and credentials come from explicit arguments or the standard AWS variables
  (``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, profiles...); retries are botocore's "standard" mode.
- ``requests`` counts the HTTP requests sent (retries included), for benchmarks and tests.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from snapstore.store.backend import BackendError, ObjectMissing

#: Files at least this large are uploaded in parts.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_PART = 8 * 1024 * 1024
#: ``open``'s read-ahead: one ranged GET fetches at least this much.
READ_AHEAD = 4 * 1024 * 1024

_URL = re.compile(r"^s3:/+([^/]+)/*(.*?)/*$")


def parse_s3_url(location) -> tuple[str, str] | None:
    """``s3://bucket/prefix`` -> (bucket, prefix); None when ``location`` is not an S3 URL.
    Accepts ``s3:/bucket/prefix`` too: ``pathlib.Path`` folds the double slash."""
    m = _URL.match(os.fspath(location)) if isinstance(location, str | os.PathLike) else None
    if not m:
        return None
    return m.group(1), m.group(2)


def _code(e) -> tuple[str, int]:
    err = getattr(e, "response", {}) or {}
    return str(err.get("Error", {}).get("Code", "")), int(err.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _missing(e) -> bool:
    code, status = _code(e)
    return status == 404 or code in ("NoSuchKey", "404", "NotFound")


def _exists_already(e) -> bool:
    code, status = _code(e)
    return status == 412 or code == "PreconditionFailed"


def _race(e) -> bool:
    code, status = _code(e)
    return status == 409 or code == "ConditionalRequestConflict"


class S3Backend:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, client=None,
                 max_attempts: int = 5) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.requests = 0
        #: keys per ListObjectsV2 page (1000 is S3's maximum)
        self.page_size = 1000
        self._count_lock = threading.Lock()
        if client is None:
            import boto3
            from botocore.config import Config

            endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            cfg = Config(
                retries={"mode": "standard", "max_attempts": max_attempts},
                max_pool_connections=32,
                # S3-compatible servers on an IP or localhost need path-style addressing
                s3={"addressing_style": "path"} if endpoint_url else None,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=cfg,
                aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            )
        self.client = client
        self.client.meta.events.register("before-send.s3.*", self._counted)

    @classmethod
    def from_url(cls, url: str, **kw) -> S3Backend:
        parsed = parse_s3_url(url)
        if parsed is None:
            raise BackendError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        return cls(parsed[0], parsed[1], **kw)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _counted(self, **_kw) -> None:
        with self._count_lock:
            self.requests += 1

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid object key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    # ---- the bucket ----------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (``snapstore init``)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if not _missing(e) and _code(e)[0] != "NoSuchBucket":
                raise BackendError(f"bucket {self.bucket}: {e}") from e
        region = self.client.meta.region_name
        kw = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        try:
            self.client.create_bucket(Bucket=self.bucket, **kw)
        except ClientError as e:
            if _code(e)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise BackendError(f"could not create bucket {self.bucket}: {e}") from e

    def is_empty(self) -> bool:
        base = f"{self.prefix}/" if self.prefix else ""
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=base, MaxKeys=1)
        return not resp.get("Contents")

    # ---- writing -------------------------------------------------------------------------

    def create(self, key: str, data: bytes) -> bool:
        """Create-only write; False if the object already existed."""
        from botocore.exceptions import ClientError

        for attempt in range(5):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return True
            except ClientError as e:
                if _exists_already(e):
                    return False
                if _race(e) and attempt < 4:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise BackendError(f"writing {key} to {self.url}: {e}") from e
        return False  # pragma: no cover

    def put(self, key: str, data: bytes) -> None:
        self.create(key, data)

    def overwrite(self, key: str, data: bytes) -> None:
        """A plain PUT: only for objects that are not content-named (lock objects)."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_stream(self, key: str, fileobj: BinaryIO) -> int:
        first = _read_full(fileobj, MULTIPART_THRESHOLD)
        if len(first) < MULTIPART_THRESHOLD:
            self.put(key, first)
            return len(first)
        return self._multipart(key, first, fileobj)

    def _multipart(self, key: str, first: bytes, fileobj: BinaryIO) -> int:
        from botocore.exceptions import ClientError

        full = self._key(key)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        parts: list[dict] = []
        n = 0
        try:
            pending = bytearray(first)
            while True:
                if len(pending) < MULTIPART_PART:
                    pending += _read_full(fileobj, MULTIPART_PART - len(pending))
                if not pending:
                    break
                chunk = bytes(pending[:MULTIPART_PART])
                del pending[:MULTIPART_PART]
                resp = self.client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload,
                                               PartNumber=len(parts) + 1, Body=chunk)
                parts.append({"ETag": resp["ETag"], "PartNumber": len(parts) + 1})
                n += len(chunk)
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload, MultipartUpload={"Parts": parts}, IfNoneMatch="*",
                )
            except ClientError as e:
                if not _exists_already(e):
                    raise
                self._abort(full, upload)
            return n
        except BaseException:
            self._abort(full, upload)
            raise

    def _abort(self, full: str, upload: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload)
        except Exception:  # noqa: BLE001 - best effort; a lifecycle rule cleans up the rest
            pass

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        if self.exists(key):
            return
        with open(path, "rb") as f:
            self.put_stream(key, f)

    # ---- reading -------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from e
            raise BackendError(f"reading {key} from {self.url}: {e}") from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                          Range=f"bytes={offset}-{offset + length - 1}")
            return resp["Body"].read()
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from e
            if _code(e)[1] == 416 or _code(e)[0] == "InvalidRange":
                return b""  # past the end, as a local read would say
            raise BackendError(f"reading {key} from {self.url}: {e}") from e

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_RangeReader(self, key, self.size(key)), buffer_size=64 * 1024)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
            return True
        except ObjectMissing:
            return False

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from e
            raise BackendError(f"reading {key} from {self.url}: {e}") from e

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._key(prefix.strip("/")) + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base, PaginationConfig={"PageSize": self.page_size})
        for page in pages:
            for obj in page.get("Contents", []) or []:
                rel = self._rel(obj["Key"])
                if rel.rsplit("/", 1)[-1].startswith(".tmp-"):
                    continue
                yield rel, int(obj["Size"])

    def delete(self, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if not _missing(e):
                raise BackendError(f"deleting {key} from {self.url}: {e}") from e


def _read_full(f: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


class _RangeReader(io.RawIOBase):
    """A seekable read-only view of one object: ranged GETs of at least READ_AHEAD bytes, the last
    window kept, so sequential reads and reads in offset order within a pack cost few requests."""

    def __init__(self, backend: S3Backend, key: str, size: int) -> None:
        self.backend = backend
        self.key = key
        self._size = size
        self._pos = 0
        self._win_start = 0
        self._win = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, b) -> int:
        want = min(len(b), self._size - self._pos)
        if want <= 0:
            return 0
        end = self._pos + want
        if not (self._win_start <= self._pos and end <= self._win_start + len(self._win)):
            length = min(max(want, READ_AHEAD), self._size - self._pos)
            self._win = self.backend.get_range(self.key, self._pos, length)
            self._win_start = self._pos
            if len(self._win) < want:
                want = len(self._win)
                end = self._pos + want
        off = self._pos - self._win_start
        b[:want] = self._win[off:off + want]
        self._pos = end
        return want
