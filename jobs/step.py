"""The step contract shared by the controller and the jobs.

A step lives under ``steps/<kind>/<id>/`` in the store.  The controller writes its
``step.json`` (kind, params, inputs); the job reads it, checks that every input is
committed, writes its outputs, and commits them by writing ``_SUCCESS`` last.
A step is done exactly when its ``_SUCCESS`` exists.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from jobs.storage import Store, open_store

STEP_FILE = "step.json"
MARKER = "_SUCCESS"
FAILED = "_FAILED"
"""Written by a step that failed on a bad input: retrying it will not help."""
LOG = "log.txt"
# Bump when a job's outputs change meaning, so old results are not reused.
CONTRACT_VERSION = 1


class JobError(RuntimeError):
    """A problem with the step's inputs or parameters: retrying will not help."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def step_id(kind: str, params: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Hash of everything a step's result depends on."""
    payload = canonical_json({"v": CONTRACT_VERSION, "kind": kind, "params": params, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def step_prefix(kind: str, sid: str) -> str:
    return f"steps/{kind}/{sid}"


@dataclass(frozen=True)
class StepSpec:
    """What to compute: ``inputs`` maps a role to the store prefix of a committed step or dataset."""

    kind: str
    params: Mapping[str, Any]
    inputs: Mapping[str, str] = field(default_factory=dict)
    label: str = ""

    @property
    def id(self) -> str:
        return step_id(self.kind, self.params, self.inputs)

    @property
    def prefix(self) -> str:
        return step_prefix(self.kind, self.id)

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "id": self.id, "label": self.label, "params": self.params, "inputs": self.inputs},
            indent=2, sort_keys=True,
        )

    @staticmethod
    def from_json(text: str) -> "StepSpec":
        raw = json.loads(text)
        spec = StepSpec(raw["kind"], raw["params"], raw.get("inputs", {}), raw.get("label", ""))
        if raw.get("id") and raw["id"] != spec.id:
            raise JobError(f"step.json id {raw['id']} does not match its content ({spec.id})")
        return spec


def is_done(store: Store, prefix: str) -> bool:
    return store.exists(f"{prefix}/{MARKER}")


def write_failure(store: Store, prefix: str, error: str) -> None:
    store.write_bytes(f"{prefix}/{FAILED}", (json.dumps(
        {"error": error, "retryable": False, "host": socket.gethostname(), "time": time.time()}) + "\n").encode())


def read_failure(store: Store, prefix: str) -> dict | None:
    if not store.exists(f"{prefix}/{FAILED}"):
        return None
    return json.loads(store.read_bytes(f"{prefix}/{FAILED}"))


def read_record(store: Store, prefix: str) -> dict:
    return json.loads(store.read_bytes(f"{prefix}/{MARKER}"))


def split_step_uri(uri: str) -> tuple[str, str]:
    """``<root>/steps/<kind>/<id>/step.json`` -> (root, ``steps/<kind>/<id>``)."""
    head, sep, tail = uri.rpartition("/steps/")
    parts = tail.split("/")
    if not sep or len(parts) != 3 or parts[2] != STEP_FILE:
        raise JobError(f"not a step URI: {uri!r} (expected <store>/steps/<kind>/<id>/{STEP_FILE})")
    return head or "/", f"steps/{parts[0]}/{parts[1]}"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("cluster-tune", "torch", "transformers", "sib-clustering", "scikit-learn", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


@dataclass
class StepContext:
    """What a job sees: its spec, the store, and a local scratch folder."""

    store: Store
    spec: StepSpec
    prefix: str
    scratch: Path
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> Mapping[str, Any]:
        return self.spec.params

    def input(self, role: str) -> str:
        try:
            return self.spec.inputs[role]
        except KeyError:
            raise JobError(f"step {self.spec.kind} has no input {role!r}") from None

    def put_bytes(self, name: str, data: bytes) -> None:
        self.store.write_bytes(f"{self.prefix}/{name}", data)
        self.outputs.append(name)

    def put_json(self, name: str, value: Any) -> None:
        self.put_bytes(name, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def put_dir(self, local: Path, name: str) -> None:
        for path in sorted(Path(local).rglob("*")):
            if path.is_file():
                rel = f"{name}/{path.relative_to(local).as_posix()}"
                self.store.upload_file(path, f"{self.prefix}/{rel}")
                self.outputs.append(rel)


def run_step(uri: str, kind: str, handler: Callable[[StepContext], dict | None]) -> dict:
    """Run one step from its ``step.json`` URI and commit it; returns the ``_SUCCESS`` record."""
    root, prefix = split_step_uri(uri)
    store = open_store(root)
    spec = StepSpec.from_json(store.read_bytes(f"{prefix}/{STEP_FILE}").decode())
    if spec.kind != kind:
        raise JobError(f"step {prefix} is a {spec.kind!r} step, not {kind!r}")
    if is_done(store, prefix):
        return read_record(store, prefix)
    for role, dep in spec.inputs.items():
        if not is_done(store, dep):
            raise JobError(f"input {role!r} ({dep}) is not done")
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix=f"ctune-{kind}-"))
    try:
        ctx = StepContext(store, spec, prefix, scratch)
        summary = handler(ctx) or {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {
        "kind": spec.kind,
        "id": spec.id,
        "label": spec.label,
        "params": spec.params,
        "inputs": spec.inputs,
        "outputs": sorted(ctx.outputs),
        "summary": summary,
        "versions": versions(),
        "host": socket.gethostname(),
        "started": started,
        "finished": time.time(),
        "seconds": round(time.time() - started, 3),
        "timings": ctx.extra.get("timings", {}),
    }
    store.write_bytes(f"{prefix}/{MARKER}", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return record
