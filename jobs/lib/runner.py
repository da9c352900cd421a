"""Running one step: read its ``step.json``, check its inputs, run it, commit it.

The commit is ``_SUCCESS``, written last and only once every output the kind must write
(its kind's ``outputs``, ``jobs.contract.kinds``) is in the store, so a step is never half done.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from jobs.contract import integrity
from jobs.contract.claims import Claimed, Heartbeat, acquire, current, new_owner, release
from jobs.contract.environment import installed_versions
from jobs.contract.errors import JobError
from jobs.contract.ids import encode
from jobs.contract.inputs import ENCODER
from jobs.contract.kinds import step_kind
from jobs.contract.outputs import MODEL
from jobs.contract.params import Params
from jobs.contract.progress import StepProgress
from jobs.contract.steps import MARKER, STEP_FILE, StepSpec, is_done, read_record, split_step_uri
from jobs.lib import livelog
from jobs.storage import Store, open_store

P = TypeVar("P", bound=Params, covariant=True)


@dataclass
class StepContext(Generic[P]):
    """What a job sees: its step, its typed parameters, the store, and a local scratch folder."""

    store: Store
    spec: StepSpec
    prefix: str
    scratch: Path
    outputs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase, recorded in ``_SUCCESS``."""
    files: dict[str, dict] = field(default_factory=dict)
    """Output name -> size and SHA-256, recorded in ``_SUCCESS``."""
    guard: Callable[[], None] = lambda: None
    """Raises once this process may no longer hold the step's claim: checked before each write."""

    @property
    def params(self) -> P:
        return cast(P, self.spec.params)

    def input(self, role: str) -> str:
        try:
            return self.spec.inputs[role]
        except KeyError:
            raise JobError(f"step {self.spec.kind} has no input {role!r}") from None

    def has_input(self, role: str) -> bool:
        return role in self.spec.inputs

    def starting_model(self) -> str:
        """The folder of the upstream encoder (an ``encoder`` input), else the base model."""
        if self.has_input(ENCODER):
            return str(self.store.fetch_dir(f"{self.input(ENCODER)}/{MODEL}"))
        model = getattr(self.params, "model", None)
        if not isinstance(model, str):
            raise JobError(f"a {self.spec.kind} step names no model")
        return model

    def progress(self, phase: str, unit: str = "batches") -> StepProgress:
        """A throttled reporter of one phase: log lines and ``progress.json`` beside the step."""
        return StepProgress(phase, unit, self.store, self.prefix)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.guard()
        self.store.write_bytes(f"{self.prefix}/{name}", data)
        self.outputs.append(name)
        self.files[name] = integrity.entry(data)

    def put_json(self, name: str, value: Any) -> None:
        self.put_bytes(name, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def put_dir(self, local: Path, name: str) -> None:
        for path in sorted(Path(local).rglob("*")):
            if path.is_file():
                self.guard()
                rel = f"{name}/{path.relative_to(local).as_posix()}"
                self.store.upload_file(path, f"{self.prefix}/{rel}")
                self.outputs.append(rel)
                self.files[rel] = integrity.file_entry(path)


Handler = Callable[[StepContext], "dict | None"]


def _device() -> tuple[str, str]:
    """What the step computed on: ``gpu`` when it used CUDA (and the GPU's name), else ``cpu``
    (and the CPU's model name). Asking never starts CUDA in a step that did not use it."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            return "gpu", str(torch.cuda.get_device_name(torch.cuda.current_device()))
    except Exception:
        pass
    return "cpu", _cpu_name()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _peak_rss_mb() -> float:
    """The job process's peak resident memory so far (a packed process: over its cells so far)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _check_inputs(store: Store, spec: StepSpec) -> None:
    for role, dep in spec.inputs.items():
        if not is_done(store, dep):
            raise JobError(f"input {role!r} ({dep}) is not done")


def run_step(uri: str, kind: str, handler: Handler) -> dict:
    """Run one step from its ``step.json`` URI and commit it; returns the ``_SUCCESS`` record."""
    root, prefix = split_step_uri(uri)
    store = open_store(root)
    spec = StepSpec.from_json(store.read_bytes(f"{prefix}/{STEP_FILE}").decode())
    if spec.kind != kind:
        raise JobError(f"step {prefix} is a {spec.kind!r} step, not {kind!r}")
    if is_done(store, prefix):
        return read_record(store, prefix)
    _check_inputs(store, spec)
    claim = acquire(store, prefix, new_owner())
    if claim is None:
        held = current(store, prefix)
        raise Claimed(f"step {prefix} is being computed by {held.owner if held else 'another process'}")
    beat = Heartbeat(store, claim)
    livelog.claimed(store, prefix)
    try:
        with beat:
            record = _compute(store, spec, prefix, kind, handler, beat)
            beat.check()
            if is_done(store, prefix):
                raise Claimed(f"step {prefix} was committed by another process meanwhile")
            store.write_bytes(f"{prefix}/{MARKER}", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    except BaseException:
        with contextlib.suppress(Exception):
            release(store, beat.claim)
        raise
    return record


def _compute(store: Store, spec: StepSpec, prefix: str, kind: str, handler: Handler, beat: Heartbeat) -> dict:
    """Run the handler under the claim; the ``_SUCCESS`` record it earns (not yet written)."""
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix=f"ctune-{kind}-"))
    try:
        ctx: StepContext = StepContext(store, spec, prefix, scratch, guard=beat.check)
        ctx.progress("loading", "")
        summary = handler(ctx) or {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    device, device_name = _device()
    missing = [name for name in step_kind(kind).outputs if name not in ctx.outputs]
    if missing:
        raise RuntimeError(f"the {kind} job wrote no {', '.join(missing)}: not committed")
    return {
        "kind": spec.kind,
        "id": spec.id,
        "label": spec.label,
        "params": encode(spec.params),
        "inputs": dict(spec.inputs),
        "outputs": sorted(ctx.outputs),
        integrity.FILES: dict(sorted(ctx.files.items())),
        "summary": summary,
        "versions": installed_versions(),
        "host": socket.gethostname(),
        "device": device,
        "device_name": device_name,
        "claim": beat.claim.generation,
        "started": started,
        "finished": time.time(),
        "seconds": round(time.time() - started, 3),
        "peak_rss_mb": _peak_rss_mb(),
        "timings": ctx.timings,
    }
