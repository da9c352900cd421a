"""The practitioner's path: ``ctune train`` (corpus + labels -> model folder), ``ctune suggest``
and ``ctune predict``.

``train`` runs the same steps as the grid (cluster -> inter-train -> fit), made by the same
builders (``controller.plan.graph``) and cached in the store like any other step, so training
again on the same inputs redoes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from controller.analysis.advice import THRESHOLD, advise, sample_agreement
from controller.analysis.agreement import nmi
from controller.models.gate import GateSettings
from controller.models.publish import Outcome, Serving
from controller.plan.datasets import read_source
from controller.plan.graph import Plan, cluster_step, evaluate_step, export_step, fit_step, intertrain_step
from controller.plan.settings import DEFAULT_SETTING, SETTINGS
from controller.practice.corpus import CorpusBound, bounded_corpus, corpus_texts, index_bytes
from controller.practice.rounds import RoundFiles, against_current, round_files
from controller.run.backends.base import Backend, RunResult
from controller.run.backends.local import LocalBackend, job_env
from jobs.contract.errors import StepsFailed
from jobs.contract.intertrainings import BASE, INTER_TRAININGS
from jobs.contract.outputs import DEV_LABELS, EXPORT, MODEL, SERVING, read_cluster_ids
from jobs.contract.params import (
    ClusterParams,
    IntertrainOptimization,
    Optimization,
    SelfTrainOptions,
    StrongOptimization,
    clustering_problem,
)
from jobs.contract.sampling import cluster_sample_indices
from jobs.contract.staging import LABELED, TRAIN, StagedDataset, corpus, labeled_cluster_ids, stage, staged_dataset
from jobs.contract.steps import StepSpec
from jobs.contract.texts import digests
from jobs.data import DataError, Examples, dump_jsonl, label_names, read_examples
from jobs.storage import Store


@dataclass(frozen=True)
class TrainRequest:
    labeled: Path | str
    """A local .jsonl/.csv file, an ``s3://`` object, or every .jsonl/.csv under an ``s3://`` prefix."""
    out: Path
    corpus: Path | str | None = None
    """Unlabeled texts; the labeled texts are always part of the corpus too (first)."""
    model: str = "minilm"
    setting: str = DEFAULT_SETTING
    """One of ``TRAIN_SETTINGS``: ``clust+concat`` (cluster inter-training, then a linear probe on
    the inter-trained and the pretrained encoder's embeddings side by side), ``clust+concat+self``
    (the same, fitted again with the corpus texts it labels most confidently), ``clust+probe`` (on
    the inter-trained encoder's alone), ``clust`` (cluster inter-training, then fine-tune), ``probe`` and
    ``bert`` (the same without inter-training), or ``auto``: ``clust`` when the clusters agree
    with the labeled texts, else ``bert`` (see controller.analysis.advice)."""
    protocol: str = "strong"
    text_field: str = "text"
    label_field: str = "label"
    clustering: ClusterParams = field(default_factory=ClusterParams)
    selftrain: SelfTrainOptions = field(default_factory=SelfTrainOptions)
    """Which corpus texts a self-training probe (``clust+concat+self``) learns from again."""
    intertrain: IntertrainOptimization = field(default_factory=IntertrainOptimization)
    seed: int = 0
    bound: CorpusBound = field(default_factory=CorpusBound)
    """How many corpus texts (besides the labeled ones) the round clusters and inter-trains on,
    and which."""

    @property
    def fine_tuning(self) -> Optimization:
        return StrongOptimization() if self.protocol == "strong" else Optimization()


@dataclass(frozen=True)
class StagedCorpus:
    index: str
    """The staged corpus index (``INDEX_FILE``: a digest per corpus text read, labeled ones first)."""
    read: int
    """Corpus texts read (besides the labeled ones)."""
    kept: int
    """Of them, those the round clusters and inter-trains on."""
    labeled: int = 0
    """Of them, those that are labeled texts too (in the round as labeled texts)."""


INDEX_FILE = "index.npy"


def _quiet(info: dict) -> None:
    return None


def stage_training_data(store: Store, req: TrainRequest,
                        labeled: Examples | None = None) -> tuple[str, Examples, Examples, StagedCorpus]:
    """``labeled``: ``req.labeled`` when the caller has read it already. The corpus is read as
    a stream and bounded (``req.bound``); its index (a digest per text) is staged beside."""
    if labeled is None:
        labeled = read_source(str(req.labeled), req.text_field, req.label_field)
    names = label_names(labeled.labels)
    if len(names) < 2:
        raise DataError(f"{req.labeled}: at least two different labels are needed, found {len(names)}")
    extra, total, also, index = None, 0, 0, digests(labeled.texts)
    if req.corpus is not None:
        bounded = bounded_corpus(corpus_texts(str(req.corpus), req.text_field), req.bound, str(req.corpus),
                                 set(index.tolist()))
        extra, total, also = Examples(bounded.texts, (None,) * len(bounded.texts)), bounded.total, bounded.labeled
        index = np.concatenate([index, bounded.index])
    texts = corpus(labeled, extra)
    dataset = staged_dataset("train", {TRAIN: texts, LABELED: labeled}, names,
                             {"corpus": len(texts), "labeled": len(labeled), "corpus_read": total})
    stage(store, dataset)
    kept = StagedDataset("corpus-index", {INDEX_FILE: index_bytes(index)}, {"texts": len(index)})
    stage(store, kept)
    return dataset.prefix, texts, labeled, StagedCorpus(kept.prefix, total, len(texts) - len(labeled), also)


def corpus_clustering(clustering: ClusterParams, prefix: str) -> StepSpec:
    return cluster_step(clustering, prefix, "corpus")


def training_plan(req: TrainRequest, setting: str, prefix: str) -> Plan:
    """The steps of one of ``TRAIN_SETTINGS`` (not ``auto``): where it starts and how it learns
    come from the grid's own table (controller.plan.settings)."""
    chosen = SETTINGS[setting]
    steps: dict[str, StepSpec] = {}
    clusterings = {}
    encoder = None
    clust = corpus_clustering(req.clustering, prefix)
    if chosen.needs_clusters:
        steps[clust.id] = clust
        clusterings["corpus"] = clust.id
    if chosen.start != BASE:
        inter = intertrain_step(INTER_TRAININGS[str(chosen.start)], req.model, req.seed, req.intertrain, prefix,
                                f"corpus {chosen.start}", clusters=clust.prefix)
        steps[inter.id] = inter
        encoder = inter.prefix
    if chosen.method == "probe":  # nothing is fine-tuned: the protocol's options would only split the cache
        relabel = req.selftrain if chosen.self_trains else None
        fit = fit_step(req.model, req.seed, Optimization(max_length=req.fine_tuning.max_length), prefix,
                       f"fit {setting}", encoder, "concat" if chosen.beside else "probe",
                       clusters=clust.prefix if relabel else None, self_training=relabel)
    else:
        fit = fit_step(req.model, req.seed, req.fine_tuning, prefix, f"fit {setting} ({req.protocol})", encoder)
    steps[fit.id] = fit
    return Plan(steps, (), clusterings)


def labeled_agreement(store: Store, clust: StepSpec, labeled: Examples) -> dict:
    """NMI and AMI between the clusters and the labels, on the labeled texts alone."""
    mine = labeled_cluster_ids(read_cluster_ids(store, clust.prefix), len(labeled))
    return {"labeled_nmi": nmi(list(labeled.labels), mine),
            "labeled_ami": sample_agreement(mine, list(labeled.labels))}


def check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"output folder {out} exists and is not empty")


def export_model(store: Store, fit_prefix: str, out: Path) -> None:
    """Copy the trained model folder to ``out`` (written beside it, then renamed into place)."""
    source = store.fetch_dir(f"{fit_prefix}/{MODEL}")
    out = out.expanduser().resolve()
    check_output(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".complete"))
    if out.exists():
        out.rmdir()
    tmp.rename(out)


def _run(backend: Backend, plan: Plan, on_event) -> RunResult:
    result = backend.run(plan, on_event)
    if not result.ok:
        raise StepsFailed(f"{len(result.failed)} step(s) failed")
    return result


def run_training(store: Store, req: TrainRequest, on_event, announce: Callable[[dict], None] = _quiet,
                 backend: Backend | None = None) -> dict:
    """Train and export; raises StepsFailed when a step failed (its log was shown).
    ``announce`` hears what was measured and chosen before the long steps start."""
    check_output(req.out)
    fit, info = train_steps(store, req, on_event, announce, backend)
    export_model(store, fit.prefix, req.out)
    (req.out / "ctune.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def train_steps(store: Store, req: TrainRequest, on_event, announce: Callable[[dict], None] = _quiet,
                backend: Backend | None = None, labeled: Examples | None = None) -> tuple[StepSpec, dict]:
    """Run (or find done) the training's steps, with ``backend`` (local processes by default):
    the fit step, and what was measured and chosen."""
    prefix, texts, labeled, read = stage_training_data(store, req, labeled)
    backend = backend or LocalBackend(store)
    agreement: dict = {}
    setting = req.setting
    if setting == "auto" or SETTINGS[setting].needs_clusters:
        problem = clustering_problem(len(texts), req.clustering.n_clusters)
        if problem:
            raise DataError(f"the corpus has {problem}")
        clust = corpus_clustering(req.clustering, prefix)
        _run(backend, Plan({clust.id: clust}, (), {}), on_event)
        agreement = labeled_agreement(store, clust, labeled)
        if setting == "auto":
            setting = advise(agreement["labeled_ami"])
    bounded = {"corpus_read": read.read, "corpus_kept": read.kept, "corpus_also_labeled": read.labeled,
               "corpus_limit": req.bound.limit,
               "corpus_pick": req.bound.pick, "corpus_index": read.index}
    announce({"setting": setting, "asked": req.setting, "labeled": len(labeled), "corpus": len(texts),
              **bounded, **agreement})
    plan = training_plan(req, setting, prefix)
    _run(backend, plan, on_event)
    fit = next(s for s in plan.steps.values() if s.kind == "fit")
    info = {"corpus": len(texts), "labeled": len(labeled), "labels": label_names(labeled.labels),
            "setting": setting, "asked": req.setting,
            "protocol": req.protocol if SETTINGS[setting].fine_tunes else None, **agreement,
            "advice_threshold": THRESHOLD if req.setting == "auto" else None,
            "steps": {st.kind: sid for sid, st in plan.steps.items()}, "dataset": prefix,
            "labeled_digest": _digest(labeled), "corpus_digest": _digest(texts), **bounded}
    return fit, info


def _digest(examples: Examples) -> str:
    return hashlib.sha256(dump_jsonl(examples)).hexdigest()


def stage_dev(store: Store, dev: Examples, names: list[str]) -> str:
    dataset = staged_dataset("dev", {TRAIN: dev}, names, {"dev": len(dev)})
    stage(store, dataset)
    return dataset.prefix


def dev_predictor(store: Store, backend: Backend, dev_prefix: str, on_event) -> Callable[[str], dict]:
    """Labels (and each label's probability) for the staged dev texts from a model folder's
    store URI: an ``evaluate`` step run by ``backend`` (cached: the same model on the same dev
    set is scored once)."""

    def predict(model_uri: str) -> dict:
        step = evaluate_step(model_uri, dev_prefix, f"evaluate {model_uri.rsplit('/', 2)[-2]}")
        _run(backend, Plan({step.id: step}, (), {}), on_event)
        return dict(json.loads(store.read_bytes(f"{step.prefix}/{DEV_LABELS}")))

    return predict


def serving_exporter(store: Store, backend: Backend, fit: StepSpec, dev_prefix: str, on_event,
                     max_length: int = 128) -> Callable[[], Serving]:
    """The fit step's classifier as an ONNX folder: an ``export`` step run by ``backend`` and
    checked on the staged dev texts (cached like any step); StepsFailed when the check fails."""

    def exported() -> Serving:
        step = export_step(fit.prefix, dev_prefix, "export onnx", max_length)
        _run(backend, Plan({fit.id: fit, step.id: step}, (), {}), on_event)  # fit: found done, read by the export
        return Serving(store.fetch_dir(f"{step.prefix}/{SERVING}"),
                       dict(json.loads(store.read_bytes(f"{step.prefix}/{EXPORT}"))))

    return exported


def train_to_registry(store: Store, req: TrainRequest, registry_uri: str, dev_source: str, settings: GateSettings,
                      on_event, announce: Callable[[dict], None], say: Callable[[str], None],
                      backend: Backend | None = None, batch: int = 50) -> Outcome:
    """Train (steps cached in ``store``, run by ``backend``: local processes by default), then
    publish a version in the registry through the gate, with its round's report and the
    ``batch`` texts it proposes to label next."""
    from controller.models.publish import check_dev, labels_of, publish
    from controller.models.registry import Registry

    registry = Registry(registry_uri)
    registry.store.check()
    dev = read_source(dev_source, req.text_field, req.label_field)
    labeled = read_source(str(req.labeled), req.text_field, req.label_field)
    names = label_names(labeled.labels)
    known = labels_of(registry, registry.pointer().current)
    check_dev(dev, sorted({*names, *known}), dev_source)  # before hours of training, not after
    backend = backend or LocalBackend(store)
    fit, info = train_steps(store, req, on_event, announce, backend, labeled)
    dev_prefix = stage_dev(store, dev, sorted({str(y) for y in dev.labels}))
    params = against_current(registry, batch, req.seed)

    def report() -> RoundFiles:
        return round_files(store, backend, on_event, params, req.clustering, info["dataset"], info["corpus"],
                           f"{info['corpus_index']}/{INDEX_FILE}", fit, dev_prefix)

    return publish(registry, lambda: store.fetch_dir(f"{fit.prefix}/{MODEL}"), f"{store.root}/{fit.prefix}/{MODEL}",
                   {**info, "model": req.model}, dev, dev_source, settings,
                   dev_predictor(store, backend, dev_prefix, on_event), say, report,
                   serving_exporter(store, backend, fit, dev_prefix, on_event))


def suggest(store: Store, corpus_path: Path, budget: int, clustering: ClusterParams, text_field: str,
            on_event, seed: int = 0) -> list[dict]:
    """The ``budget`` texts to label first: spread over the clusters by size."""
    texts = read_examples(corpus_path, text_field, None)
    if budget > len(texts):
        raise DataError(f"--budget {budget} is larger than the corpus ({len(texts)} texts)")
    problem = clustering_problem(len(texts), clustering.n_clusters)
    if problem:
        raise DataError(f"the corpus has {problem}")
    dataset = staged_dataset("corpus", {TRAIN: texts}, None, {"corpus": len(texts)})
    stage(store, dataset)
    clust = corpus_clustering(clustering, dataset.prefix)
    _run(LocalBackend(store), Plan({clust.id: clust}, (), {}), on_event)
    ids = read_cluster_ids(store, clust.prefix)
    picked = cluster_sample_indices(ids, budget, 0, seed)
    return [{"index": int(i), "cluster": int(ids[i]), "text": texts.texts[i]} for i in picked]


def run_predict(argv: list[str]) -> int:
    """``ctune predict``: in a process of its own (``jobs.lib.predict``), so this one loads no torch."""
    return subprocess.run([sys.executable, "-m", "jobs.lib.predict", *argv], env=job_env()).returncode
