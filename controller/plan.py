"""Expand a spec into a DAG of steps keyed by the hash of their inputs.

One clustering per dataset, one inter-training per (dataset, inter-training), one
embedding per (dataset, encoder) that a probe reads, and one cell per (dataset, setting,
budget, repetition); cells of the same (budget, repetition) use the same label sample
whatever the setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from controller.settings import SETTINGS, Setting
from controller.spec import ClusteringSpec, ExperimentSpec, protocol_args
from jobs.step import StepSpec


@dataclass(frozen=True)
class Cell:
    dataset: str
    setting: str
    budget: int
    repetition: int
    step: str
    """Id of the step that computes this cell."""
    kind: str = "finetune"
    protocol: str = "paper"
    """Fine-tuning protocol; ``-`` for cells that fine-tune nothing."""
    sampling: str = "random"

    @property
    def column(self) -> str:
        """How the report names this cell's setting."""
        name = self.setting if self.protocol in ("paper", "-") else f"{self.setting} ({self.protocol})"
        return name if self.sampling == "random" or self.setting == "clusters" else f"{name} [cluster sample]"


@dataclass(frozen=True)
class Plan:
    steps: dict[str, StepSpec]
    """Step id -> step, in dependency order."""
    cells: tuple[Cell, ...]
    clusterings: dict[str, str]
    """Dataset -> id of its clustering step."""
    analyses: tuple[tuple[str, str, str], ...] = ()
    """(dataset, inter-training, id of its analyze step)."""

    def deps(self, sid: str) -> list[str]:
        """Ids of the steps this step reads (datasets are staged before, not steps)."""
        return [p.rsplit("/", 1)[1] for p in self.steps[sid].inputs.values() if p.startswith("steps/")]

    def only(self, kinds: set[str]) -> "Plan":
        """The steps of these kinds and every step they read; cells of the kept steps."""
        keep: set[str] = set()
        for sid in reversed(list(self.steps)):
            if self.steps[sid].kind in kinds or sid in keep:
                keep.add(sid)
                keep.update(self.deps(sid))
        return Plan({sid: s for sid, s in self.steps.items() if sid in keep},
                    tuple(c for c in self.cells if c.step in keep), self.clusterings,
                    tuple(a for a in self.analyses if a[2] in keep))

    def to_json(self) -> str:
        return json.dumps({
            "steps": [{"id": sid, "kind": s.kind, "label": s.label, "inputs": s.inputs} for sid, s in self.steps.items()],
            "cells": [dataclasses.asdict(c) for c in self.cells],
        }, indent=2)


def build_plan(spec: ExperimentSpec, dataset_prefixes: dict[str, str],
               corpus_prefixes: dict[str, str] | None = None) -> Plan:
    """``corpus_prefixes``: what clustering and inter-training read, per dataset (default: the
    dataset itself; with a ``corpus``, its train texts followed by the extra texts)."""
    steps: dict[str, StepSpec] = {}
    cells: list[Cell] = []
    clusterings: dict[str, str] = {}
    analyses: list[tuple[str, str, str]] = []
    settings = [SETTINGS[name] for name in spec.settings]

    def add(step: StepSpec) -> StepSpec:
        steps.setdefault(step.id, step)
        return step

    for d in spec.datasets:
        data = dataset_prefixes[d.name]
        corpus = (corpus_prefixes or {}).get(d.name, data)
        # where each start's encoder comes from: no input (the base model) or an inter-training
        encoders: dict[str, dict[str, str]] = {"base": {}}
        base_embed = embed_step(spec, data, {}, f"{d.name} base")
        starts = {s.start for s in settings}
        if starts & {"mlm", "mlm+clust"}:
            mlm = add(StepSpec("intertrain", {"setting": "mlm", "model": spec.model, "seed": spec.seed,
                                              **dataclasses.asdict(spec.mlm)},
                               {"dataset": corpus}, label=f"{d.name} mlm"))
            encoders["mlm"] = {"encoder": mlm.prefix}
        clusters: dict[str, str] = {}
        if starts & {"clust", "mlm+clust"} or "cluster" in spec.sampling or \
                any(s.method == "clusters" for s in settings):
            cluster_inputs = {"dataset": corpus}
            if spec.clustering.method != "sib" and spec.clustering.embedding == "encoder":
                corpus_embed = base_embed if corpus == data else embed_step(spec, corpus, {}, f"{d.name} corpus")
                cluster_inputs["embeddings"] = add(corpus_embed).prefix
            clust = add(StepSpec("cluster", clustering_params(spec.clustering), cluster_inputs, label=f"{d.name}"))
            clusterings[d.name] = clust.id
            clusters = {"clusters": clust.prefix}
            for start, upstream in (("clust", "base"), ("mlm+clust", "mlm")):
                if start in starts:
                    inter = add(StepSpec(
                        "intertrain",
                        {"setting": "clust", "model": spec.model, "seed": spec.seed,
                         **dataclasses.asdict(spec.intertrain)},
                        {"dataset": corpus, "clusters": clust.prefix, **encoders[upstream]},
                        label=f"{d.name} {start}",
                    ))
                    encoders[start] = {"encoder": inter.prefix}
        if spec.analysis.enabled:
            for start in (s for s in ("mlm", "clust", "mlm+clust") if s in encoders):
                step = add(analyze_step(spec, data, encoders[start], start, f"{d.name} {start}"))
                analyses.append((d.name, start, step.id))
        embeddings: dict[str, str] = {}
        for start in sorted({s.start for s in settings if s.method == "probe"}):
            embed = add(embed_step(spec, data, encoders[start], f"{d.name} {start}"))
            embeddings[start] = embed.prefix
        for sampling in spec.sampling:
            for setting, protocol in _columns(spec, settings):
                if setting.method == "clusters" and sampling != spec.sampling[0]:
                    continue  # the cluster-only classifier always samples by cluster: once is enough
                for budget in spec.budgets:
                    for rep in range(spec.repetitions):
                        suffix = ("" if protocol in ("paper", "-") else f" {protocol}") + \
                            ("" if sampling == "random" else " cluster-sampled")
                        step = add(_cell_step(spec, setting, protocol, sampling, data, clusters, encoders,
                                              embeddings, budget, rep,
                                              label=f"{d.name} {setting.name}{suffix} b{budget} r{rep}"))
                        cells.append(Cell(d.name, setting.name, budget, rep, step.id, step.kind, protocol,
                                          "cluster" if setting.method == "clusters" else sampling))
    return Plan(_topological(steps), tuple(cells), clusterings, tuple(analyses))


def clustering_params(c: ClusteringSpec) -> dict:
    """The cluster step's parameters; sIB's stay what they were before dense methods existed."""
    params = dataclasses.asdict(c)
    del params["embedding"], params["glove"]
    if c.method == "sib":
        return params
    params["embedding"] = c.embedding
    if c.embedding == "glove":
        path = Path(c.glove).expanduser().resolve()
        params["glove"] = str(path)
        params["glove_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return params


def _columns(spec: ExperimentSpec, settings: list[Setting]) -> list[tuple[Setting, str]]:
    """(setting, protocol) pairs: fine-tunes once per protocol, the rest once."""
    fine = [(s, p) for p in spec.protocols for s in settings if s.method == "finetune"]
    return fine + [(s, "-") for s in settings if s.method != "finetune"]


def embed_step(spec: ExperimentSpec, data: str, encoder: dict, label: str) -> StepSpec:
    return StepSpec("embed", {"model": spec.model, "max_length": spec.finetune.max_length},
                    {"dataset": data, **encoder}, label=label)


def analyze_step(spec: ExperimentSpec, data: str, encoder: dict, start: str, label: str) -> StepSpec:
    a = spec.analysis
    return StepSpec("analyze", {"model": spec.model, "inter_training": start, "max_texts": a.max_texts,
                                "permutations": a.permutations, "pooling": a.pooling, "tsne": a.tsne,
                                "seed": spec.seed, "max_length": spec.finetune.max_length},
                    {"dataset": data, **encoder}, label=label)


def _cell_step(spec: ExperimentSpec, setting: Setting, protocol: str, sampling: str, data: str, clusters: dict,
               encoders: dict, embeddings: dict, budget: int, rep: int, label: str) -> StepSpec:
    sample = {"budget": budget, "repetition": rep, "sample_seed": spec.seed}
    inputs = {"dataset": data}
    # random samples keep the parameters (and so the ids) they had before sampling existed
    if sampling == "cluster" or setting.method == "clusters":
        sample["sampling"] = "cluster"
        inputs.update(clusters)
    if setting.method == "finetune":
        return StepSpec("finetune", {"model": spec.model, **sample, "seed": spec.seed,
                                     **dataclasses.asdict(protocol_args(spec, protocol))},
                        {**inputs, **encoders[setting.start]}, label=label)
    if setting.method == "probe":
        inputs["embeddings"] = embeddings[setting.start]
    return StepSpec("classic", {"method": setting.method, **sample}, inputs, label=label)


def _topological(steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
    order: dict[str, StepSpec] = {}

    def visit(sid: str) -> None:
        if sid in order:
            return
        for p in steps[sid].inputs.values():
            dep = p.rsplit("/", 1)[1]
            if p.startswith("steps/") and dep in steps:
                visit(dep)
        order[sid] = steps[sid]

    for sid in steps:
        visit(sid)
    return order
