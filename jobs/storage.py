"""One storage interface over a root URI: a local folder or ``s3://bucket/prefix``.

Every write is atomic per object (a temporary name renamed into place locally; a
single PUT on S3), so a reader never sees half a file.  Whole results are committed
by the step contract (see ``jobs.contract.steps``): a ``_SUCCESS`` record written last.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from jobs.contract.errors import CtuneError

TRANSIENT_S3 = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500"}
DENIED_S3 = {"InvalidAccessKeyId": "the access key is unknown to the store",
             "SignatureDoesNotMatch": "the secret key does not match the access key",
             "AccessDenied": "the credentials may not use this bucket",
             "403": "the store refused the credentials (a wrong key or secret, or no rights on the bucket)"}
"""Refusals of the credentials, by S3 error code (HEAD requests carry only the status)."""


class StoreError(CtuneError, RuntimeError):
    """The store cannot be reached (retryable), or refused or lacks an object (not retryable)."""

    def __init__(self, message: str, retryable: bool = False, outage: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.outage = outage
        """The store stopped answering for longer than the outage window (mid-run)."""


class Store(Protocol):
    root: str

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def create_bytes(self, key: str, data: bytes) -> bool: ...
    def read_tagged(self, key: str) -> tuple[bytes, str] | None: ...
    def replace_bytes(self, key: str, data: bytes, tag: str | None) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def sizes(self, prefix: str) -> dict[str, int]: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def upload_file(self, local: Path, key: str) -> None: ...
    def fetch_dir(self, prefix: str) -> Path: ...
    def check(self) -> None: ...


def _clean(key: str) -> str:
    key = key.strip("/")
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"invalid store key {key!r}")
    return key


OUTAGE_ENV = "CTUNE_STORE_OUTAGE_S"
DEFAULT_OUTAGE_S = 180.0


def env_seconds(name: str, default: float, low: float = 0.0) -> float:
    """A duration from the environment, at least ``low``; the default when unset or unreadable."""
    try:
        return max(low, float(os.environ.get(name, default)))
    except ValueError:
        return default


def outage_window_s() -> float:
    """How long a store that stops answering mid-run is waited for (``CTUNE_STORE_OUTAGE_S``)."""
    return env_seconds(OUTAGE_ENV, DEFAULT_OUTAGE_S)


def cache_dir() -> Path:
    """Where remote folders are downloaded; ``CTUNE_CACHE`` overrides."""
    base = os.environ.get("CTUNE_CACHE") or os.path.join(tempfile.gettempdir(), "ctune-cache")
    return Path(base)


class LocalStore:
    """A folder on this machine."""

    def __init__(self, root: str | Path):
        self.path = Path(root).expanduser().resolve()
        self.root = str(self.path)

    def _p(self, key: str) -> Path:
        return self.path / _clean(key)

    def check(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.root}: {exc.strerror}") from exc
        if not os.access(self.path, os.W_OK):
            raise StoreError(f"store folder {self.root} is not writable")

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"missing in store: {key}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._p(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if absent (atomically: a hard link fails when the name exists);
        False when it was there already."""
        target = self._p(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object and a tag of its content (None when absent), for :meth:`replace_bytes`."""
        try:
            data = self._p(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def replace_bytes(self, key: str, data: bytes, tag: str | None) -> bool:
        """Write ``key`` only if it is still what :meth:`read_tagged` saw (``tag``; None: only if
        absent); False when another writer changed it first. Writers on this machine take turns
        through a lock file beside it."""
        import fcntl

        target = self._p(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(f".{target.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = self.read_tagged(key)
            if (now[1] if now else None) != tag:
                return False
            self.write_bytes(key, data)
            return True

    def upload_file(self, local: Path, key: str) -> None:
        target = self._p(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        shutil.copyfile(local, tmp)
        os.replace(tmp, target)

    def exists(self, key: str) -> bool:
        return self._p(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._p(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.path))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def sizes(self, prefix: str) -> dict[str, int]:
        """Key -> size in bytes of every object under ``prefix``."""
        return {key: (self.path / key).stat().st_size for key in self.list(prefix)}

    def delete_prefix(self, prefix: str) -> None:
        path = self._p(prefix)
        if path.is_file():
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)

    def delete(self, key: str) -> None:
        """Remove one object (none there is fine)."""
        self._p(key).unlink(missing_ok=True)

    def fetch_dir(self, prefix: str) -> Path:
        path = self._p(prefix)
        if not path.is_dir():
            raise StoreError(f"missing in store: {prefix}/")
        return path


def _environment_credentials() -> dict[str, str | None]:
    """The key pair in the environment now, when there is one (the first source boto3 reads
    anyway): boto3's default session keeps what it read first, so a process whose
    environment changed would go on signing with the old pair."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return {}
    return {"aws_access_key_id": key, "aws_secret_access_key": secret,
            "aws_session_token": os.environ.get("AWS_SESSION_TOKEN")}


def _error_code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


CONDITION_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
"""What S3 answers a conditional write (``If-None-Match``, ``If-Match``) whose condition failed,
or that lost a race with another writer."""


def _refused_condition(exc: StoreError, also: tuple[str, ...] = ()) -> bool:
    return isinstance(exc.__cause__, Exception) and _error_code(exc.__cause__) in CONDITION_REFUSED + also


def _missing(exc: StoreError) -> bool:
    """Whether a StoreError says the key is not there (a GET's ``NoSuchKey``, a HEAD's bare 404)."""
    return str(exc).startswith("missing in store") or _error_code(exc.__cause__) in ("NotFound", "404")


_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")


CONTENT_TYPES = {"html": "text/html; charset=utf-8", "svg": "image/svg+xml", "png": "image/png",
                 "json": "application/json", "csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8",
                 "txt": "text/plain; charset=utf-8"}
"""What a browser opening the report from S3 needs to be told (the report's files, logs)."""


def _content_type(key: str) -> dict[str, str]:
    name = key.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    return {"ContentType": CONTENT_TYPES[ext]} if ext in CONTENT_TYPES else {}


class S3Store:
    """``s3://bucket/prefix`` on any S3-compatible server.

    Endpoint, credentials and region come from the standard AWS environment
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_DEFAULT_REGION``), as boto3 reads them.
    """

    def __init__(self, uri: str):
        rest = uri[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreError(f"invalid S3 URI {uri!r}: no bucket")
        if "@" in bucket:
            raise StoreError("an s3:// store URI carries no credentials (user:password@): "
                             "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
        if not _BUCKET.match(bucket):
            raise StoreError(f"invalid S3 URI {uri!r}: bucket names are 3-63 letters, digits, '.', '-' or '_'")
        self.bucket = bucket
        self.outage_s = outage_window_s()
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        import boto3
        from botocore.config import Config

        self._client = boto3.client(
            "s3",
            region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60),
            **_environment_credentials(),
        )

    def _key_id(self) -> str:
        """The access key's id (never the secret), as the client signs with it."""
        credentials = self._client._request_signer._credentials  # botocore keeps no public accessor
        return str(getattr(credentials, "access_key", "") or "none")

    def _k(self, key: str) -> str:
        key = _clean(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _once(self, what: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise StoreError(f"missing in store: {what}") from exc
            if code in DENIED_S3:
                raise StoreError(f"store {self.root} refused the credentials of AWS_ACCESS_KEY_ID "
                                 f"{self._key_id()!r}: {DENIED_S3[code]}") from exc
            if code == "NoSuchBucket":
                raise StoreError(f"store {self.root}: bucket {self.bucket} does not exist") from exc
            raise StoreError(f"store {self.root} refused {what}: {code or exc}", code in TRANSIENT_S3) from exc
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach store {self.root}: {exc}", retryable=True) from exc

    def _call(self, what: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, riding out an outage (connection errors, 5xx, throttling)
        for up to ``outage_s`` seconds with backoff; then a StoreError with ``outage`` set."""
        return self._within(self.outage_s, what, fn, *args, **kwargs)

    def _within(self, window: float, what: str, fn, *args, **kwargs):
        deadline, delay = None, 0.5
        while True:
            try:
                return self._once(what, fn, *args, **kwargs)
            except StoreError as exc:
                if not exc.retryable or window <= 0:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + window
                    print(f"store {self.root} not answering ({str(exc).split(': ', 1)[-1][:120]}); "
                          f"retrying for up to {window:.0f} s", file=sys.stderr, flush=True)
                if now >= deadline:
                    raise StoreError(f"store {self.root} unreachable for more than {window:.0f} s: {exc}",
                                     retryable=True, outage=True) from exc
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 15.0)

    def check(self) -> None:
        """Before anything runs: an unreachable store is an error now, not an outage to wait out;
        refused credentials and a missing bucket are named."""
        try:
            self._within(0, f"bucket {self.bucket}", self._client.head_bucket, Bucket=self.bucket)
        except StoreError as exc:
            if str(exc).startswith("missing"):
                raise StoreError(f"store {self.root}: bucket {self.bucket} does not exist") from None
            if _error_code(exc.__cause__) == "403":  # a HEAD answer has no body: ask again to learn why
                self._within(0, f"bucket {self.bucket}", self._client.list_objects_v2, Bucket=self.bucket, MaxKeys=1)
            raise

    def read_bytes(self, key: str) -> bytes:
        # the body is read inside the retried call: a connection cut mid-body is retried too
        data: bytes = self._call(key, lambda: self._client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read())
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(key, self._client.put_object, Bucket=self.bucket, Key=self._k(key), Body=data,
                   **_content_type(key))

    def share_url(self, key: str, seconds: int = 86_400) -> str:
        """A link that opens ``key`` in a browser without credentials, for ``seconds``."""
        return str(self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=seconds))

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if absent (a conditional PUT, ``If-None-Match: *``); False when
        it was there already."""
        try:
            self._call(key, self._client.put_object, Bucket=self.bucket, Key=self._k(key), Body=data,
                       IfNoneMatch="*")
            return True
        except StoreError as exc:
            if _refused_condition(exc):
                return False
            raise

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object and its ETag (None when absent), for :meth:`replace_bytes`."""
        def get() -> tuple[bytes, str]:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._k(key))
            return answer["Body"].read(), str(answer["ETag"])

        try:
            found: tuple[bytes, str] = self._call(key, get)
        except StoreError as exc:
            if _missing(exc):
                return None
            raise
        return found

    def replace_bytes(self, key: str, data: bytes, tag: str | None) -> bool:
        """Write ``key`` only if its ETag is still ``tag`` (``If-Match``; None: only if absent,
        ``If-None-Match: *``); False when another writer changed it first."""
        if tag is None:
            return self.create_bytes(key, data)
        try:
            self._call(key, self._client.put_object, Bucket=self.bucket, Key=self._k(key), Body=data, IfMatch=tag,
                       **_content_type(key))
            return True
        except StoreError as exc:
            if _refused_condition(exc, ("NoSuchKey", "404")):  # gone since it was read: changed too
                return False
            raise

    def upload_file(self, local: Path, key: str) -> None:
        self._call(key, self._client.upload_file, str(local), self.bucket, self._k(key))

    def exists(self, key: str) -> bool:
        try:
            self._call(key, self._client.head_object, Bucket=self.bucket, Key=self._k(key))
            return True
        except StoreError as exc:
            if _missing(exc):
                return False
            raise

    def _iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        full = self._k(prefix) + "/"
        paginator = self._client.get_paginator("list_objects_v2")
        pages = self._call(prefix, lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=full)))
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:], int(obj.get("Size", 0))

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        return (key for key, _ in self._iter_objects(prefix))

    def list(self, prefix: str) -> list[str]:
        return sorted(self._iter_keys(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        """Key -> size in bytes of every object under ``prefix``, from one listing."""
        return dict(self._iter_objects(prefix))

    def delete(self, key: str) -> None:
        """Remove one object (none there is fine: S3 answers a delete of nothing with success)."""
        self._call(key, self._client.delete_object, Bucket=self.bucket, Key=self._k(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._k(k) for k in self._iter_keys(prefix)]
        for i in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": k} for k in keys[i:i + 1000]]}
            self._call(prefix, self._client.delete_objects, Bucket=self.bucket, Delete=batch)

    def fetch_dir(self, prefix: str) -> Path:
        """Download a committed folder once into the local cache and return it."""
        keys = self.list(prefix)
        if not keys:
            raise StoreError(f"missing in store: {prefix}/")
        digest = hashlib.sha256(f"{self.root}/{prefix}".encode()).hexdigest()[:16]
        local = cache_dir() / digest
        done = local / ".complete"
        if done.exists():
            return local
        staging = local.with_name(local.name + f".tmp-{uuid.uuid4().hex[:8]}")
        base = _clean(prefix) + "/"
        for key in keys:
            dest = staging / key[len(base):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._call(key, self._client.download_file, self.bucket, self._k(key), str(dest))
        (staging / ".complete").write_text("ok")
        try:
            os.replace(staging, local)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
        return local


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``s3://bucket``, ``a/b``)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return f"s3://{bucket}", key.strip("/")


def open_store(uri: str | Path) -> Store:
    uri = str(uri)
    if uri.startswith("s3://"):
        return S3Store(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"unsupported store URI {uri!r}: use a folder or s3://bucket/prefix")
    return LocalStore(uri.removeprefix("file://"))
