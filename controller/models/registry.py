"""A model registry in a store (``s3://bucket/models/<name>`` or a folder):

    versions/<version>/model/...      the model folder, as ``ctune train`` writes it; never changed
    versions/<version>/onnx/...       the whole classifier as one ONNX graph (and its int8 variant),
                                      tokenizer and labels: loaded with onnxruntime and tokenizers
                                      alone (jobs.serving); checked against the model
    versions/<version>/record.json    inputs' digests, setting, step ids, dev metrics, counts,
                                      created, code version, the gate's decision and why, what
                                      changed in the corpus since the version then in use
    versions/<version>/README.md      the model card (controller.models.card)
    versions/<version>/dev/<digest>.json  its labels (and probabilities) for a dev set's texts,
                                      kept when it was scored on that dev set (the gate reads them)
    versions/<version>/corpus_index.npy  a digest per corpus text its round read (the next
                                      round tells new texts from these)
    versions/<version>/to_label.jsonl the texts its round proposes to label next
    versions/<version>/_COMPLETE      written last: a version without it is not there
    current.json                      the version in use, and every move of the pointer

``current.json`` is only ever replaced with a conditional write (``If-Match`` on S3, a lock
beside it in a folder): two trainers at once, or a crash, never leave it torn or lose a move.
A version is the fit step's id (a hash of every input), so the same inputs give the same
version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.contract.errors import EXIT_RACED, CtuneError
from jobs.storage import Store, open_store

VERSIONS = "versions"
CURRENT = "current.json"
RECORD = "record.json"
CARD = "README.md"
MODEL = "model"
SERVING = "onnx"
COMPLETE = "_COMPLETE"
DEV = "dev"
INDEX = "corpus_index.npy"
TO_LABEL = "to_label.jsonl"
ROUND_FILES = (INDEX, TO_LABEL)


class RegistryError(CtuneError, ValueError):
    """A registry that cannot answer what was asked (one line)."""


class RegistryRaced(CtuneError):
    """Other writers kept moving the pointer: this version is recorded, not current; running
    again decides against the version then current."""

    retryable = True
    exit_code = EXIT_RACED


def split_ref(ref: str) -> tuple[str, str | None]:
    """``URI[@VERSION]`` -> (URI, VERSION or None)."""
    head, sep, tail = ref.rpartition("@")
    if sep and "/" not in tail and head:
        return head, tail
    return ref, None


def is_registry(uri: str) -> bool:
    """An ``s3://`` URI, or a folder that holds a registry already."""
    if uri.startswith("s3://"):
        return True
    path = Path(uri).expanduser()
    return (path / CURRENT).is_file() or (path / VERSIONS).is_dir()


@dataclass(frozen=True)
class RoundFiles:
    """What a retraining round keeps with its version (``controller.practice.rounds``)."""

    drift: dict
    """What changed since the version then in use (kept in the record)."""
    to_label: bytes
    """``TO_LABEL``: the texts to label next."""
    index: bytes
    """``INDEX``: a digest per corpus text read."""


@dataclass(frozen=True)
class Pointer:
    stack: tuple[str, ...]
    """Versions promoted and not rolled back, oldest first: the last is current."""
    log: tuple[dict, ...]
    """Every move: ``{"version", "at", "action", "why"}``."""
    tag: str | None
    """What the conditional write of the next move must find (None: no current.json yet)."""

    @property
    def current(self) -> str | None:
        return self.stack[-1] if self.stack else None

    def was_current(self, version: str) -> bool:
        return any(m["version"] == version for m in self.log)


class Registry:
    def __init__(self, uri: str, store: Store | None = None):
        self.uri = uri.rstrip("/") if uri.startswith("s3://") else str(Path(uri).expanduser().resolve())
        self.store = store or open_store(self.uri)
        self._complete: set[str] = set()  # a complete version never changes: asked of the store once

    def _v(self, version: str, name: str = "") -> str:
        return f"{VERSIONS}/{version}" + (f"/{name}" if name else "")

    def has(self, version: str) -> bool:
        if version not in self._complete and self.store.exists(self._v(version, COMPLETE)):
            self._complete.add(version)
        return version in self._complete

    def record(self, version: str) -> dict:
        if not self.has(version):
            raise RegistryError(f"{self.uri} has no version {version} (`ctune models ls {self.uri}` lists them)")
        return dict(json.loads(self.store.read_bytes(self._v(version, RECORD))))

    def versions(self) -> list[dict]:
        """The complete versions' records, oldest first."""
        self._complete.update(k.split("/")[-2] for k in self.store.list(VERSIONS) if k.endswith(f"/{COMPLETE}"))
        records = [self.record(v) for v in self._complete]
        return sorted(records, key=lambda r: (r.get("created", 0), r["version"]))

    def pointer(self) -> Pointer:
        found = self.store.read_tagged(CURRENT)
        if found is None:
            return Pointer((), (), None)
        data, tag = found
        raw = json.loads(data)
        return Pointer(tuple(raw.get("stack", [])), tuple(raw.get("log", [])), tag)

    def resolve(self, version: str | None) -> str:
        """The version asked for, or the current one."""
        if version:
            self.record(version)  # says so in one line when it is not there
            return version
        current = self.pointer().current
        if current is None:
            n = len(self.versions())
            raise RegistryError(f"{self.uri} has no current.json ({n} version(s)): name one as {self.uri}@VERSION, "
                                f"or `ctune models promote {self.uri} VERSION`" if n else
                                f"{self.uri} holds no model (no current.json, no versions)")
        return current

    def publish(self, version: str, model_dir: Path, record: dict, card: str,
                files: dict[str, bytes] | None = None, serving_dir: Path | None = None) -> None:
        """Write a version: its model folder, its ONNX folder, ``files`` (its round's,
        ``ROUND_FILES``), card and record, then ``_COMPLETE``. A version already complete is
        left as it is."""
        if self.has(version):
            return
        for folder, name in ((model_dir, MODEL), *(((serving_dir, SERVING),) if serving_dir else ())):
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
                self.store.upload_file(path, self._v(version, f"{name}/{path.relative_to(folder)}"))
        for name, data in (files or {}).items():
            self.store.write_bytes(self._v(version, name), data)
        self.update_record(version, record, card)
        self.store.create_bytes(self._v(version, COMPLETE), b"ok\n")

    def update_record(self, version: str, record: dict, card: str) -> None:
        """The version's record and card: when it is published, and again after a race made the
        gate decide again (the model is unchanged)."""
        self.store.write_bytes(self._v(version, CARD), card.encode())
        self.store.write_bytes(self._v(version, RECORD), (json.dumps(record, indent=2) + "\n").encode())

    def move(self, seen: Pointer, action: str, version: str, why: str) -> bool:
        """Move the pointer from what ``seen`` read: ``promote`` pushes ``version``,
        ``rollback`` pops the current one. False when another writer moved it first."""
        stack = [*seen.stack, version] if action == "promote" else list(seen.stack[:-1])
        entry = {"version": version, "at": time.time(), "action": action, "why": why,
                 "current": stack[-1] if stack else None}
        body = {"current": stack[-1] if stack else None, "stack": stack, "log": [*seen.log, entry]}
        return self.store.replace_bytes(CURRENT, (json.dumps(body, indent=2) + "\n").encode(), seen.tag)

    def dev_predictions(self, version: str, dev_digest: str) -> dict | None:
        """The version's labels for the dev set of that digest, when it was scored on it."""
        key = self._v(version, f"{DEV}/{dev_digest[:16]}.json")
        return dict(json.loads(self.store.read_bytes(key))) if self.store.exists(key) else None

    def put_dev_predictions(self, version: str, dev_digest: str, predictions: dict) -> None:
        self.store.write_bytes(self._v(version, f"{DEV}/{dev_digest[:16]}.json"),
                               (json.dumps(predictions) + "\n").encode())

    def corpus_index_uri(self, version: str) -> str | None:
        """Where a job reads the version's corpus index from; None when it keeps none."""
        return f"{self.uri}/{self._v(version, INDEX)}" if self.store.exists(self._v(version, INDEX)) else None

    def round_file(self, version: str, name: str) -> bytes | None:
        """One of the version's ``ROUND_FILES``, or None when its round wrote none."""
        self.record(version)
        key = self._v(version, name)
        return self.store.read_bytes(key) if self.store.exists(key) else None

    def model_uri(self, version: str) -> str:
        """Where a job reads the version's model folder from."""
        return f"{self.uri}/{self._v(version, MODEL)}"

    def fetch(self, version: str) -> Path:
        """The version's model folder on this machine (downloaded once, then from the cache)."""
        self.record(version)
        return self.store.fetch_dir(self._v(version, MODEL))

    def serving_uri(self, version: str) -> str:
        return f"{self.uri}/{self._v(version, SERVING)}"

    def fetch_serving(self, version: str) -> Path | None:
        """The version's ONNX folder on this machine; None for a version published without one."""
        if not self.record(version).get("onnx"):
            return None
        return self.store.fetch_dir(self._v(version, SERVING))
