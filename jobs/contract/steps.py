"""Steps in the store: kinds, ids, where a step lives, and when it is done.

A step lives under ``steps/<kind>/<id>/``. The controller writes its ``step.json`` (kind,
parameters, inputs); the job reads it, checks that every input is committed, writes its
outputs, and commits them by writing ``_SUCCESS`` last. A step is done exactly when its
``_SUCCESS`` exists. The id hashes everything the result depends on, so the same inputs
find the same step and new inputs a new one.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobs.contract.errors import JobError
from jobs.contract.ids import canonical_json, decode, encode, step_id
from jobs.contract.inputs import check_inputs
from jobs.contract.kinds import known_kind, step_kind
from jobs.contract.layout import CACHE, FAILED, LOG, MARKER, STEP_FILE, STEPS
from jobs.contract.params import Params
from jobs.storage import Store


def step_prefix(kind: str, sid: str) -> str:
    return f"{STEPS}/{kind}/{sid}"


def step_uri(store_root: str, prefix: str) -> str:
    """What a job is started with: the URI of the step's ``step.json``."""
    return f"{store_root.rstrip('/')}/{prefix}/{STEP_FILE}"


def split_step_uri(uri: str) -> tuple[str, str]:
    """``<root>/steps/<kind>/<id>/step.json`` -> (root, ``steps/<kind>/<id>``)."""
    head, sep, tail = uri.rpartition(f"/{STEPS}/")
    parts = tail.split("/")
    if not sep or len(parts) != 3 or parts[2] != STEP_FILE:
        raise JobError(f"not a step URI: {uri!r} (expected <store>/{STEPS}/<kind>/<id>/{STEP_FILE})")
    return head or "/", step_prefix(parts[0], parts[1])


@dataclass(frozen=True)
class StepSpec:
    """What to compute: ``inputs`` maps a role to the store prefix of a committed step or dataset."""

    kind: str
    params: Params
    inputs: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.params.kind != self.kind:
            raise JobError(f"{type(self.params).__name__} are not the parameters of a {self.kind!r} step")
        check_inputs(self.kind, step_kind(self.kind).roles, self.inputs)
        object.__setattr__(self, "id", step_id(self.kind, encode(self.params), self.inputs))

    @property
    def prefix(self) -> str:
        return step_prefix(self.kind, self.id)

    def deps(self) -> list[str]:
        """Ids of the steps this step reads (datasets are staged, not steps)."""
        return [p.rsplit("/", 1)[1] for p in self.inputs.values() if p.startswith(f"{STEPS}/")]

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "id": self.id, "label": self.label,
                           "params": encode(self.params), "inputs": dict(self.inputs)},
                          indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> StepSpec:
        raw = json.loads(text)
        kind = raw.get("kind")
        spec = StepSpec(kind, decode(known_kind(kind).params, raw["params"]), raw.get("inputs", {}),
                        raw.get("label", ""))
        written = step_id(kind, raw["params"], spec.inputs)
        if spec.id != written:
            raise JobError(f"step.json parameters do not read back as written ({spec.id} != {written})")
        if raw.get("id") and raw["id"] != written:
            raise JobError(f"step.json id {raw['id']} does not match its content ({written})")
        return spec


def is_done(store: Store, prefix: str) -> bool:
    return store.exists(f"{prefix}/{MARKER}")


def done_steps(store: Store) -> set[str]:
    """The prefixes of every committed step, from one listing of the store."""
    return scan_markers(store)[0]


def scan_markers(store: Store) -> tuple[set[str], set[str]]:
    """The prefixes of every committed step and of every step that failed on a bad input,
    from one listing of the store."""
    found = scan_steps(store, (MARKER, FAILED))
    return found[MARKER], found[FAILED]


def scan_steps(store: Store, names: Iterable[str]) -> dict[str, set[str]]:
    """Per name, the prefixes of the steps that hold a file (or a folder) of that name, from
    one listing of the store."""
    found: dict[str, set[str]] = {n: set() for n in names}
    for key in store.list(STEPS):
        prefix, _, name = key.rpartition("/")
        if name in found:
            found[name].add(prefix)
            continue
        parent, _, folder = prefix.rpartition("/")
        if folder in found:
            found[folder].add(parent)
    return found


def write_failure(store: Store, prefix: str, error: str) -> None:
    store.write_bytes(f"{prefix}/{FAILED}", (json.dumps(
        {"error": error, "retryable": False, "host": socket.gethostname(), "time": time.time()}) + "\n").encode())


def read_failure(store: Store, prefix: str) -> dict | None:
    if not store.exists(f"{prefix}/{FAILED}"):
        return None
    failure: dict = json.loads(store.read_bytes(f"{prefix}/{FAILED}"))
    return failure


def read_record(store: Store, prefix: str) -> dict:
    """The ``_SUCCESS`` record: inputs, parameters, outputs, versions, timings."""
    record: dict = json.loads(store.read_bytes(f"{prefix}/{MARKER}"))
    return record


__all__ = ["CACHE", "FAILED", "LOG", "MARKER", "STEPS", "STEP_FILE", "canonical_json", "step_id"]  # read from here too
