"""Publish a trained model as a registry version and move the pointer through the gate.

Both models, the new one and the current one, are evaluated on the same dev set in the same
run. A version is written whole (``_COMPLETE`` last) before the pointer moves; the pointer
moves with a conditional write, and a writer that finds it moved meanwhile evaluates the new
current version and decides again. A crash anywhere leaves either no version, or a complete
version and the old pointer: the next run finds the version and finishes the decision.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from controller.models.card import render_card
from controller.models.gate import Decision, DevScores, decide, score
from controller.models.history import write_history
from controller.models.registry import Pointer, Registry
from jobs.data import DataError, Examples, dump_jsonl

Predict = Callable[[str], list[str]]
"""A model folder's labels for the dev texts, from its store URI (an ``evaluate`` step: the
controller loads no torch)."""

MAX_RACES = 5


@dataclass(frozen=True)
class Outcome:
    version: str
    new: bool
    """False: this version was there and decided already (nothing new to train or publish)."""
    promoted: bool
    current: str | None
    """The version in use after this run."""
    decision: Decision | None


def code_version() -> str:
    try:
        return metadata.version("cluster-tune")
    except metadata.PackageNotFoundError:
        return "unknown"


def check_dev(dev: Examples, labels: Sequence[str], source: str) -> None:
    if not dev.texts:
        raise DataError(f"--dev {source}: no texts")
    unknown = sorted({str(y) for y in dev.labels} - set(labels))
    if unknown:
        raise DataError(f"--dev {source}: labels {', '.join(unknown)} are not the model's "
                        f"({', '.join(labels)}): a dev set must be labeled as the training texts are")


def _scores(predict: Predict, model_uri: str, dev: Examples) -> DevScores:
    return score([str(y) for y in dev.labels], predict(model_uri))


def _decided(registry: Registry, version: str, pointer: Pointer) -> bool:
    """Published, and its decision carried out: it is or was current, or the gate refused it."""
    if not registry.has(version):
        return False
    gate = registry.record(version).get("gate") or {}
    return pointer.was_current(version) or gate.get("promote") is False


def publish(registry: Registry, fetch_model: Callable[[], Path], model_uri: str, info: dict, dev: Examples,
            dev_source: str, tolerance: float, predict: Predict, say: Callable[[str], None]) -> Outcome:
    """``fetch_model``: the new model's folder here (copied into the version; fetched only when
    the version is new); ``model_uri``: the same in the store, for its ``evaluate`` step."""
    version = info["steps"]["fit"][:16]
    pointer = registry.pointer()
    if _decided(registry, version, pointer):
        return Outcome(version, False, pointer.current == version, pointer.current, None)
    check_dev(dev, info["labels"], dev_source)
    model_dir = fetch_model()
    new = _scores(predict, model_uri, dev)
    say(f"version {version} on the dev set: {new.line()}")
    record = {"version": version, "registry": registry.uri, "created": time.time(), "code_version": code_version(),
              "base_model": info.get("model"), "setting": info["setting"], "asked": info["asked"],
              "protocol": info.get("protocol"), "labels": info["labels"], "labeled": info["labeled"],
              "corpus": info["corpus"], "labeled_digest": info["labeled_digest"],
              "corpus_digest": info["corpus_digest"], "dev_digest": hashlib.sha256(dump_jsonl(dev)).hexdigest(),
              "dev_source": dev_source, "steps": info["steps"], "dataset": info["dataset"],
              "probe": (model_dir / "probe_head.json").is_file(),
              "agreement": {k: info[k] for k in ("labeled_ami", "labeled_nmi") if k in info}}
    for _ in range(MAX_RACES):
        decision = _gate(registry, pointer, new, dev, tolerance, predict, say)
        record["gate"] = decision.to_dict()
        if registry.has(version):  # a crash or a race left it published: the decision is new
            registry.update_record(version, record, render_card(record))
        else:
            registry.publish(version, model_dir, record, render_card(record))
        if not decision.promote:
            write_history(registry)
            return Outcome(version, True, False, pointer.current, decision)
        if registry.move(pointer, "promote", version, decision.why):
            write_history(registry)
            return Outcome(version, True, True, version, decision)
        say("another trainer moved the pointer meanwhile: deciding again against its version")
        pointer = registry.pointer()
    raise DataError(f"{registry.uri}: the pointer kept moving under {MAX_RACES} tries; run again")


def _gate(registry: Registry, pointer: Pointer, new: DevScores, dev: Examples, tolerance: float, predict: Predict,
          say: Callable[[str], None]) -> Decision:
    current = pointer.current
    if current is None:
        return decide(new, None, None, tolerance)
    theirs = _scores(predict, registry.model_uri(current), dev)
    say(f"current version {current} on the same dev set: {theirs.line()}")
    return decide(new, theirs, current, tolerance)
