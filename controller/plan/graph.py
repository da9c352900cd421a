"""Expand a spec into a DAG of steps keyed by the hash of their inputs.

One clustering per dataset, one encoder per (dataset, inter-training, copy) a setting
starts from (upstream ones too; ``seeds`` copies, each inter-trained with its own seed),
one embedding per (dataset, encoder) that a probe reads, and one cell per (dataset, setting,
budget, repetition, copy of its encoder); cells of the same (budget, repetition) use the
same label sample whatever the setting and the copy. Every step is made once, the first time
something asks for it, so dependencies always come first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.plan.settings import Setting, all_settings
from controller.plan.spec import ExperimentSpec, needs_clustering
from jobs.contract.errors import BadInput
from jobs.contract.inputs import BESIDE, CLASSIFIER, CLUSTERS, DATASET, EMBEDDINGS, ENCODER
from jobs.contract.intertrainings import BASE, INTER_TRAININGS, InterTraining, objective
from jobs.contract.kinds import step_kind
from jobs.contract.params import (
    AnalyzeParams,
    ClassicParams,
    ClusterParams,
    EmbedParams,
    EvaluateParams,
    ExportParams,
    FinetuneParams,
    FitParams,
    InterTrainingOptions,
    IntertrainParams,
    Optimization,
    Params,
    SampleParams,
    SelfTrainOptions,
    SetFitParams,
)
from jobs.contract.steps import StepSpec


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
    copy: int = 0
    """Which inter-training of the cell's encoder (0 when it has one, or none)."""

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
        return self.steps[sid].deps()

    def only(self, kinds: set[str]) -> Plan:
        """The steps of these kinds and every step they read; cells of the kept steps."""
        keep: set[str] = set()
        for sid in reversed(list(self.steps)):
            if self.steps[sid].kind in kinds or sid in keep:
                keep.add(sid)
                keep.update(self.deps(sid))
        return Plan({sid: s for sid, s in self.steps.items() if sid in keep},
                    tuple(c for c in self.cells if c.step in keep), self.clusterings,
                    tuple(a for a in self.analyses if a[2] in keep))

    def find(self, start: str, experiment: str) -> StepSpec:
        """The one step whose id starts with ``start`` (a user's abbreviation), else BadInput."""
        matches = [step for sid, step in self.steps.items() if sid.startswith(start)]
        if len(matches) != 1:
            what = "no step of" if not matches else f"{len(matches)} steps of"
            raise BadInput(f"{what} {experiment} {'has' if not matches else 'have'} an id starting with "
                           f"{start!r} (see ctune plan)")
        return matches[0]

    def to_json(self) -> str:
        return json.dumps({
            "steps": [{"id": sid, "kind": s.kind, "label": s.label, "inputs": dict(s.inputs)}
                      for sid, s in self.steps.items()],
            "cells": [dataclasses.asdict(c) for c in self.cells],
        }, indent=2)


# The step builders: the grid and ``ctune train`` make their steps with these, so both
# find the same cached steps.

def cluster_step(clustering: ClusterParams, dataset: str, label: str, embeddings: str | None = None) -> StepSpec:
    """A dataset's clustering; a GloVe file is keyed by its content."""
    if clustering.method != "sib" and clustering.embedding == "glove" and clustering.glove:
        path = Path(clustering.glove).expanduser().resolve()
        clustering = dataclasses.replace(clustering, glove=str(path),
                                         glove_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    inputs = {DATASET: dataset, **({EMBEDDINGS: embeddings} if embeddings else {})}
    return StepSpec("cluster", clustering, inputs, label)


def intertrain_step(entry: InterTraining, model: str, seed: int, options: Optimization, dataset: str,
                    label: str, clusters: str | None = None, upstream: str | None = None) -> StepSpec:
    """An inter-training of ``entry``: ``clusters`` and ``upstream`` are step prefixes."""
    inputs = {DATASET: dataset, **({CLUSTERS: clusters} if clusters else {}),
              **({ENCODER: upstream} if upstream else {})}
    params = IntertrainParams(objective=entry.objective, model=model, seed=seed, options=options)
    return StepSpec("intertrain", params, inputs, label)


def fit_step(model: str, seed: int, options: Optimization, dataset: str, label: str,
             encoder: str | None = None, head: str = "finetune", clusters: str | None = None,
             self_training: SelfTrainOptions | None = None) -> StepSpec:
    """``self_training`` (a probe head): relabel the corpus, whose clustering is ``clusters``."""
    learner = self_training.for_learner(probe=head != "finetune") if self_training else None
    params = FitParams(model=model, seed=seed, head=head, **_fields(options), self_training=learner)
    inputs = {DATASET: dataset, **({ENCODER: encoder} if encoder else {}), **({CLUSTERS: clusters} if clusters else {})}
    return StepSpec("fit", params, inputs, label)


def evaluate_step(model_uri: str, dataset: str, label: str, max_length: int = 128) -> StepSpec:
    """A model folder's labels for a staged dev set's texts (its ``train`` split)."""
    return StepSpec("evaluate", EvaluateParams(model=model_uri, max_length=max_length), {DATASET: dataset}, label)


def export_step(fit_prefix: str, dev: str, label: str, max_length: int = 128) -> StepSpec:
    """A ``fit`` step's classifier as an ONNX graph, checked on a staged dev set's texts."""
    return StepSpec("export", ExportParams(max_length=max_length), {DATASET: dev, CLASSIFIER: fit_prefix}, label)


def _fields(params: Params) -> dict[str, Any]:
    """A parameter group's fields, to build a larger parameter class from."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def _columns(spec: ExperimentSpec, settings: list[Setting]) -> list[tuple[Setting, str]]:
    """(setting, protocol) pairs: fine-tunes once per protocol, the rest once."""
    fine = [(s, p) for p in spec.protocols for s in settings if s.fine_tunes]
    return fine + [(s, "-") for s in settings if not s.fine_tunes]


class _DatasetPlan:
    """The steps of one dataset, each made once, the first time it is asked for."""

    def __init__(self, spec: ExperimentSpec, name: str, data: str, corpus: str, steps: dict[str, StepSpec]):
        self.spec, self.name, self.data, self.corpus, self.steps = spec, name, data, corpus, steps
        self.encoders: dict[tuple[str, int], str | None] = {(BASE, 0): None}
        """(encoder name, copy) -> prefix of its inter-training step (None: the base model)."""
        self.clusters: StepSpec | None = None

    def add(self, step: StepSpec) -> StepSpec:
        return self.steps.setdefault(step.id, step)

    def embed(self, dataset: str, start: str, label: str, copy: int = 0) -> StepSpec:
        encoder = self.encoder(start, copy)
        inputs = {DATASET: dataset, **({ENCODER: encoder} if encoder else {})}
        params = EmbedParams(model=self.spec.model, max_length=self.spec.finetune.max_length)
        return self.add(StepSpec("embed", params, inputs, label))

    def clustering(self) -> StepSpec:
        if self.clusters is None:
            c = self.spec.clustering
            embeddings = None
            if c.method != "sib" and c.embedding == "encoder":
                own = self.corpus == self.data  # the corpus is the dataset: its probe embedding serves
                embeddings = self.embed(self.corpus, BASE, f"{self.name} {BASE if own else 'corpus'}").prefix
            self.clusters = self.add(cluster_step(c, self.corpus, self.name, embeddings))
        return self.clusters

    def copies(self, name: str | None) -> int:
        """How many times encoder ``name`` is inter-trained (its section's ``seeds``)."""
        if name in (None, BASE):
            return 1
        options = self.spec.section(objective(INTER_TRAININGS[str(name)].objective).section)
        return options.seeds if isinstance(options, InterTrainingOptions) else 1

    def encoder(self, name: str, copy: int = 0) -> str | None:
        """The prefix of copy ``copy`` of encoder ``name``'s step, made with every step it reads.
        Copy k is inter-trained with seed ``seed + k``, from copy k (mod its count) upstream."""
        if (name, copy) not in self.encoders:
            entry = INTER_TRAININGS[name]
            upstream = self.encoder(entry.upstream, copy % self.copies(entry.upstream))
            clusters = self.clustering().prefix if entry.needs_clusters else None
            options = self.spec.section(objective(entry.objective).section)
            label = f"{self.name} {name}" + (f" i{copy}" if self.copies(name) > 1 else "")
            step = intertrain_step(entry, self.spec.model, self.spec.seed + copy, options, self.corpus,
                                   label, clusters, upstream)
            self.encoders[(name, copy)] = self.add(step).prefix
        return self.encoders[(name, copy)]

    def encoders_of(self, starts: set[str]) -> None:
        """Every copy of the encoders that settings start from, upstream ones first (the
        registry's order)."""
        for name in INTER_TRAININGS:
            if name in starts:
                for copy in range(self.copies(name)):
                    self.encoder(name, copy)

    def embeddings_of(self, starts: list[str]) -> None:
        """The embeddings that probes read: one per copy of each starting encoder."""
        for start in starts:
            for copy in range(self.copies(start)):
                self.embed(self.data, start, f"{self.name} {start}" + (f" i{copy}" if copy else ""), copy)

    def analyses(self) -> list[tuple[str, str, str]]:
        out = []
        a = self.spec.analysis
        for name in (n for n in INTER_TRAININGS if (n, 0) in self.encoders):
            params = AnalyzeParams(model=self.spec.model, inter_training=name, max_texts=a.max_texts,
                                   permutations=a.permutations, pooling=a.pooling, tsne=a.tsne,
                                   seed=self.spec.seed, max_length=self.spec.finetune.max_length)
            inputs = {DATASET: self.data, ENCODER: str(self.encoders[(name, 0)])}
            step = self.add(StepSpec("analyze", params, inputs, f"{self.name} {name}"))
            out.append((self.name, name, step.id))
        return out

    def _self_training(self, setting: Setting) -> SelfTrainOptions | None:
        return self.spec.selftrain.for_learner(probe=not setting.fine_tunes) if setting.self_trains else None

    def cell(self, setting: Setting, protocol: str, sampling: str, budget: int, rep: int, label: str,
             copy: int = 0) -> StepSpec:
        sample = SampleParams(budget=budget, repetition=rep, sample_seed=self.spec.seed, sampling=sampling)
        inputs = {DATASET: self.data}
        if sampling == "cluster" or setting.self_trains:  # self-training may keep cluster-agreeing labels
            inputs[CLUSTERS] = self.clustering().prefix
        params: Params
        if setting.kind != "classic":
            encoder = self.encoder(str(setting.start), copy) if setting.start is not None else None
            if setting.fine_tunes:
                params = FinetuneParams(model=self.spec.model, seed=self.spec.seed, **_fields(sample),
                                        **_fields(self.spec.protocol(protocol)),
                                        self_training=self._self_training(setting))
            elif setting.kind == "setfit":
                params = SetFitParams(model=self.spec.model, seed=self.spec.seed, **_fields(sample),
                                      **_fields(self.spec.setfit))
            else:  # a registered cell kind: its parameters take the sample's, the model and the seed
                params = step_kind(setting.kind).params(model=self.spec.model, seed=self.spec.seed,  # type: ignore[call-arg]
                                                        **_fields(sample))
            return self.add(StepSpec(setting.kind, params, {**inputs, **({ENCODER: encoder} if encoder else {})},
                                     label))
        if setting.method == "probe":
            inputs[EMBEDDINGS] = self.embed(self.data, str(setting.start), f"{self.name} {setting.start}"
                                              + (f" i{copy}" if copy else ""), copy).prefix
            if setting.beside:
                inputs[BESIDE] = self.embed(self.data, setting.beside, f"{self.name} {setting.beside}").prefix
        params = ClassicParams(method=setting.method, **_fields(sample), self_training=self._self_training(setting))
        return self.add(StepSpec("classic", params, inputs, label))


def _cells(dp: _DatasetPlan, spec: ExperimentSpec, settings: list[Setting]) -> list[Cell]:
    cells = []
    for sampling in spec.sampling:
        for setting, protocol in _columns(spec, settings):
            if setting.method == "clusters" and sampling != spec.sampling[0]:
                continue  # the cluster-only classifier always samples by cluster: once is enough
            # the cluster-only classifier spreads its sample over the clusters whatever the sampling
            drawn = "cluster" if setting.method == "clusters" else sampling
            suffix = ("" if protocol in ("paper", "-") else f" {protocol}") + \
                ("" if sampling == "random" else " cluster-sampled")
            copies = dp.copies(setting.start)
            for budget in spec.budgets:
                for rep in range(spec.repetitions):
                    for copy in range(copies):
                        label = f"{dp.name} {setting.name}{suffix} b{budget} r{rep}" + (f" i{copy}" if copies > 1 else "")
                        step = dp.cell(setting, protocol, drawn, budget, rep, label, copy)
                        cells.append(Cell(dp.name, setting.name, budget, rep, step.id, step.kind, protocol, drawn, copy))
    return cells


def build_plan(spec: ExperimentSpec, dataset_prefixes: dict[str, str],
               corpus_prefixes: dict[str, str] | None = None) -> Plan:
    """``corpus_prefixes``: what clustering and inter-training read, per dataset (default: the
    dataset itself; with a ``corpus``, its train texts followed by the extra texts)."""
    steps: dict[str, StepSpec] = {}
    cells: list[Cell] = []
    clusterings: dict[str, str] = {}
    analyses: list[tuple[str, str, str]] = []
    known = all_settings()
    settings = [known[name] for name in spec.settings]
    starts = {s.start for s in settings if s.start is not None}
    for d in spec.datasets:
        data = dataset_prefixes[d.name]
        dp = _DatasetPlan(spec, d.name, data, (corpus_prefixes or {}).get(d.name, data), steps)
        dp.encoders_of(starts)
        if needs_clustering(spec):
            clusterings[d.name] = dp.clustering().id
        if spec.analysis.enabled:
            analyses += dp.analyses()
        dp.embeddings_of(sorted({str(e) for s in settings if s.method == "probe" for e in (s.start, s.beside) if e}))
        cells += _cells(dp, spec, settings)
    return Plan(steps, tuple(cells), clusterings, tuple(analyses))
