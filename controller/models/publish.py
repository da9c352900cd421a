"""Publish a trained model as a registry version and move the pointer through the gate.

The new version, the current one and the best one promoted on the same dev set are scored on
that dev set (``evaluate`` steps; each version's per-text labels and probabilities are kept
with it, ``versions/<v>/dev/<digest>.json``), and the gate decides on the paired evidence.
A version is written whole (``_COMPLETE`` last) before the pointer moves; the pointer moves
with a conditional write. A writer whose write is refused reads the pointer again: if it holds
this version already (the write landed but its reply was lost, or a twin trainer on the same
inputs moved it) the promotion is done; otherwise it decides again against the new current
version. A crash anywhere leaves either no version, or a complete version and the old pointer,
or the moved pointer and a record that says the move is pending: the next run finishes it.

A decision is kept under the dev set's digest and the gate's settings: the same version run
again on the same dev set with the same settings gives the same outcome (and exit code)
without scoring anything; another dev set or other settings decide again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from controller.models.card import render_card
from controller.models.gate import PROMOTE, Decision, GateSettings, decide, score
from controller.models.history import write_history
from controller.models.registry import INDEX, TO_LABEL, Pointer, Registry, RegistryRaced, RoundFiles
from controller.models.round_text import round_lines
from jobs.data import DataError, Examples, dump_jsonl

Predict = Callable[[str], "dict | list[str]"]
"""A model folder's labels for the dev texts, from its store URI: an ``evaluate`` step's output
(``{"labels", "names", "probabilities"}``) or just the labels. The controller loads no torch."""

MAX_RACES = 5
FP32 = "fp32"


@dataclass(frozen=True)
class Serving:
    """A version's ONNX folder, as its ``export`` step wrote and checked it."""

    folder: Path
    check: dict
    """The step's ``export.json``: agreement with the model on the dev set, largest probability
    difference, and both graphs' (fp32, int8) labels for the dev texts."""
CORPUS_KEYS = ("corpus_read", "corpus_kept", "corpus_also_labeled", "corpus_limit", "corpus_pick")


@dataclass(frozen=True)
class Outcome:
    version: str
    new: bool
    """False: this version was decided already on this dev set with these settings (nothing scored)."""
    promoted: bool
    """This version was promoted (now or earlier); ``current`` says whether it still is."""
    current: str | None
    """The version in use after this run."""
    outcome: str
    """``promote``, ``refuse`` or ``inconclusive``: the gate's word, now or when it was decided."""
    why: str
    decision: Decision | None = None


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


def labels_of(registry: Registry, version: str | None) -> list[str]:
    """The labels a version knows (none for no version, or one the registry does not hold)."""
    return list(registry.record(version).get("labels", [])) if version and registry.has(version) else []


def dev_digest(dev: Examples) -> str:
    return hashlib.sha256(dump_jsonl(dev)).hexdigest()


def _as_predictions(raw: dict | list[str]) -> dict:
    return {"labels": [str(y) for y in raw]} if isinstance(raw, list) else dict(raw)


class _Scorer:
    """Each version's dev predictions: kept with the version, or scored once and kept."""

    def __init__(self, registry: Registry, predict: Predict, digest: str, source: str, n: int):
        self.registry, self.predict, self.digest, self.source, self.n = registry, predict, digest, source, n

    def stored(self, version: str) -> dict | None:
        found = self.registry.dev_predictions(version, self.digest)
        return found if found is not None and len(found.get("labels", ())) == self.n else None

    def labels(self, version: str) -> list[str]:
        found = self.stored(version)
        if found is None:
            found = _as_predictions(self.predict(self.registry.model_uri(version)))
            self.registry.put_dev_predictions(version, self.digest,
                                              {"dev_digest": self.digest, "dev_source": self.source, **found})
        return [str(y) for y in found["labels"]]


def _prior(record: dict, key: str) -> dict | None:
    """The decision this version already has on this dev set with these settings (not promoted)."""
    return next((d for d in record.get("decisions", []) if d.get("key") == key and d.get("outcome") != PROMOTE), None)


def _decided(registry: Registry, version: str, pointer: Pointer, key: str) -> tuple[Outcome | None, list[dict]]:
    """What this version came to already (promoted once, or decided on this dev set with these
    settings), and its decisions on other dev sets or settings."""
    if not registry.has(version):
        return None, []
    record = registry.record(version)
    if pointer.was_current(version):
        _finish_move(registry, version, record)
        return Outcome(version, False, pointer.current == version, pointer.current, PROMOTE, "promoted earlier"), []
    prior = _prior(record, key)
    if prior is not None:
        return Outcome(version, False, False, pointer.current, prior["outcome"], prior["why"]), []
    if "decisions" not in record and record.get("gate"):  # a record from before decisions were kept
        return None, [{**record["gate"], "key": None}]
    return None, [d for d in record.get("decisions", []) if d.get("key") != key]


def _finish_move(registry: Registry, version: str, record: dict, at: float | None = None) -> None:
    """The record and card say promoted once the pointer holds the version."""
    gate = record.get("gate") or {}
    if gate.get("outcome") == PROMOTE and not gate.get("moved"):
        record = {**record, "gate": {**gate, "moved": at or time.time()}}
        registry.update_record(version, record, render_card(record))
        write_history(registry)


def _round_files(files: RoundFiles | None) -> dict[str, bytes]:
    return {INDEX: files.index, TO_LABEL: files.to_label} if files else {}


def _record(registry: Registry, version: str, info: dict, digest: str, dev_source: str, model_dir: Path,
            known: list[str], files: RoundFiles | None) -> dict:
    """The version's record before the gate decides (``known``: the labels of the version in use)."""
    record = {"version": version, "registry": registry.uri, "created": time.time(), "code_version": code_version(),
              "base_model": info.get("model"), "setting": info["setting"], "asked": info["asked"],
              "protocol": info.get("protocol"), "labels": info["labels"], "labeled": info["labeled"],
              "corpus": info["corpus"], "labeled_digest": info["labeled_digest"],
              "corpus_digest": info["corpus_digest"], "dev_digest": digest,
              "dev_source": dev_source, "steps": info["steps"], "dataset": info["dataset"],
              "probe": (model_dir / "probe_head.json").is_file(),
              "agreement": {k: info[k] for k in ("labeled_ami", "labeled_nmi") if k in info},
              **{k: info[k] for k in CORPUS_KEYS if k in info},
              "labels_added": sorted(set(info["labels"]) - set(known)) if known else [],
              "labels_dropped": sorted(set(known) - set(info["labels"])),
              "drift": files.drift if files else None}
    if registry.has(version):
        before = registry.record(version)
        record["created"] = before.get("created", record["created"])
        record["drift"] = before.get("drift")
        record["onnx"] = before.get("onnx")
    return record


def onnx_record(check: dict, gold: list[str], version: str, digest: str, settings: GateSettings,
                say: Callable[[str], None], gated: list[str] | None = None) -> dict:
    """What the record keeps of the version's ONNX graphs: the export's check (against the torch
    path on a CPU), the share of dev texts where the graph's labels are those the gate scored
    (``gated``: the evaluate step's, which a GPU computes in bf16), and the gate's decision on the
    int8 graph against the fp32 one on the same dev set (``accepted``: ``ctune predict`` uses it)."""
    kept = {k: v for k, v in check.items() if k != "dev"}
    dev = check.get("dev") or {}
    kept["dev_digest"] = digest
    also = ""
    if gated is not None and len(gated) == len(dev.get(FP32, {}).get("labels", ())):
        kept["agreement_with_gate"] = sum(a == str(b) for a, b in zip(gated, dev[FP32]["labels"])) / max(1, len(gated))
        also = f"; equal to the labels the gate scored on {100 * kept['agreement_with_gate']:.2f}%"
    say(f"ONNX graph (opset {check['opset']}): labels equal to the model's on {100 * check['agreement']:.2f}% of "
        f"{check['texts']} dev texts, largest probability difference {check['max_difference']:.1e}{also}")
    if "int8" in dev:
        fp32 = [str(y) for y in dev[FP32]["labels"]]
        decision = decide(gold, [str(y) for y in dev["int8"]["labels"]], [(f"{version} {FP32}", FP32, fp32)],
                          settings, digest)
        kept["int8"] = {**kept.get("int8", {}), "gate": decision.to_dict(), "accepted": decision.promote}
        say(f"int8 graph {score(gold, dev['int8']['labels']).line()}; against the fp32 graph "
            f"({score(gold, fp32).line()}): {decision.outcome}, "
            f"{'ctune predict uses it' if decision.promote else 'ctune predict uses the fp32 graph'} ({decision.why})")
    return kept


def _new_version_parts(registry: Registry, version: str, report: Callable[[], RoundFiles] | None,
                       serving: Callable[[], Serving] | None) -> tuple[RoundFiles | None, Serving | None]:
    """The round's report and the ONNX folder, made only for a version not recorded yet (one
    recorded already, decided again on another dev set or after a race, keeps its own)."""
    if registry.has(version):
        return None, None
    return (report() if report is not None else None), (serving() if serving is not None else None)


def publish(registry: Registry, fetch_model: Callable[[], Path], model_uri: str, info: dict, dev: Examples,
            dev_source: str, settings: GateSettings, predict: Predict, say: Callable[[str], None],
            report: Callable[[], RoundFiles] | None = None, serving: Callable[[], Serving] | None = None) -> Outcome:
    """``fetch_model``: the new model's folder here (copied into the version; fetched only when
    the version is new); ``model_uri``: the same in the store, for its ``evaluate`` step;
    ``report``: the round's report and files, ``serving``: its ONNX folder, exported and
    checked (both asked only when the version is not recorded yet: one recorded already keeps
    its own; an export that fails its check raises, and nothing is published)."""
    version = info["steps"]["fit"][:16]
    digest = dev_digest(dev)
    key = settings.key(digest)
    pointer = registry.pointer()
    decided, earlier = _decided(registry, version, pointer, key)
    if decided is not None:
        return decided
    known = labels_of(registry, pointer.current)
    check_dev(dev, sorted({*info["labels"], *known}), dev_source)
    files, exported = _new_version_parts(registry, version, report, serving)
    model_dir = fetch_model()
    gold = [str(y) for y in dev.labels]
    scorer = _Scorer(registry, predict, digest, dev_source, len(dev))
    mine_raw = _as_predictions(predict(model_uri))
    mine = [str(y) for y in mine_raw["labels"]]
    say(f"version {version} on the dev set: {score(gold, mine).line()}")
    record = _record(registry, version, info, digest, dev_source, model_dir, known, files)
    if exported is not None:
        record["onnx"] = onnx_record(exported.check, gold, version, digest, settings, say, mine)
    for line in round_lines(record):
        say(line)
    mine_payload = {"dev_digest": digest, "dev_source": dev_source, **mine_raw}
    for _ in range(MAX_RACES):
        decision = _gate(scorer, pointer, gold, mine, digest, settings, say, info["labels"])
        record["gate"] = {**decision.to_dict(), "moved": None}
        record["decisions"] = [*earlier, record["gate"]]
        registry.put_dev_predictions(version, digest, mine_payload)
        if registry.has(version):  # a crash or a race left it published: the decision is new
            registry.update_record(version, record, render_card(record))
        else:
            registry.publish(version, model_dir, record, render_card(record), _round_files(files),
                             exported.folder if exported else None)
        if not decision.promote:
            write_history(registry)
            return Outcome(version, True, False, pointer.current, decision.outcome, decision.why, decision)
        now: str | None = version
        if not registry.move(pointer, "promote", version, decision.why):
            pointer = registry.pointer()
            # the write landed and its reply was lost, or a twin moved it (a third writer may have moved it since)
            now = pointer.current if pointer.was_current(version) else None
        if now is not None:
            _finish_move(registry, version, record)
            write_history(registry)
            return Outcome(version, True, True, now, decision.outcome, decision.why, decision)
        say(f"another trainer moved the pointer meanwhile (now {pointer.current}): deciding again against it")
    write_history(registry)
    raise RegistryRaced(f"{registry.uri}: the pointer moved under this trainer {MAX_RACES} times; "
                        f"{version} is recorded, not current; run again to decide against the version then current")


def best_promoted(scorer: _Scorer, pointer: Pointer, gold: list[str]) -> tuple[str, list[str]] | None:
    """The best version promoted and not rolled back whose labels on this dev set are kept
    (every version scored on it when it was new or current is), by accuracy then macro-F1."""
    found = []
    for version in pointer.stack:
        kept = scorer.stored(version)
        if kept is not None:
            labels = [str(y) for y in kept["labels"]]
            s = score(gold, labels)
            found.append(((s.accuracy, s.macro_f1), version, labels))
    if not found:
        return None
    _, version, labels = max(found, key=lambda f: f[0])
    return version, labels


def _gate(scorer: _Scorer, pointer: Pointer, gold: list[str], mine: list[str], digest: str, settings: GateSettings,
          say: Callable[[str], None], labels: Sequence[str] = ()) -> Decision:
    """``labels``: the new version's; a comparison with a version that knows other labels is
    made on the dev texts of the labels both know."""
    current = pointer.current
    if current is None:
        return decide(gold, mine, (), settings, digest)
    theirs = scorer.labels(current)
    say(f"current version {current} on the same dev set: {score(gold, theirs).line()}")
    others: list[tuple[str, str, Sequence[str]]] = [(current, "current", theirs)]
    best = best_promoted(scorer, pointer, gold)
    if best is not None and best[0] != current:
        b, now = score(gold, best[1]), score(gold, theirs)
        if (b.accuracy, b.macro_f1) > (now.accuracy, now.macro_f1):
            say(f"best version promoted on this dev set, {best[0]}: {b.line()}")
            others.append((best[0], "best", best[1]))
    known = {"": list(labels), **{v: labels_of(scorer.registry, v) for v, _, _ in others if scorer.registry.has(v)}}
    decision = decide(gold, mine, others, settings, digest, known if labels else None)
    for comparison in decision.comparisons:
        if comparison.new_scores is not None:
            say(f"on the dev texts of labels both know (not {', '.join(comparison.left_out)}): this version "
                f"{comparison.new_scores.line()}; {comparison.against} {comparison.scores.line()}")
        say(f"against {comparison.role} {comparison.against}: {comparison.evidence.line()}")
    return decision

