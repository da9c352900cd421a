"""The practitioner's path: ``ctune train`` (corpus + labels -> model folder) and ``ctune predict``.

``train`` runs the same steps as the grid (cluster -> inter-train -> fit), cached in the
store like any other step, so training again on the same inputs redoes nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from controller.advice import THRESHOLD, advise, sample_agreement
from controller.backends.local import LocalBackend
from controller.plan import Plan, clustering_params
from controller.spec import ClusteringSpec, IntertrainSpec, StrongSpec, TrainSpec
from jobs.data import DataError, Examples, dump_jsonl, label_names, read_examples
from jobs.datasets import read_cluster_ids
from jobs.step import MARKER, StepSpec, is_done, step_prefix
from jobs.storage import Store


@dataclass(frozen=True)
class TrainRequest:
    labeled: Path
    out: Path
    corpus: Path | None = None
    """Unlabeled texts; the labeled texts are always part of the corpus too."""
    model: str = "minilm"
    setting: str = "auto"
    """``clust`` (cluster inter-training, then fine-tune), ``bert`` (fine-tune only), or ``auto``:
    ``clust`` when the clusters agree with the labeled texts (see controller.advice)."""
    protocol: str = "strong"
    text_field: str = "text"
    label_field: str = "label"
    clustering: ClusteringSpec = ClusteringSpec()
    intertrain: IntertrainSpec = IntertrainSpec()
    seed: int = 0


def stage_training_data(store: Store, req: TrainRequest) -> tuple[str, Examples, Examples]:
    labeled = read_examples(req.labeled, req.text_field, req.label_field)
    corpus_texts = list(labeled.texts)
    if req.corpus is not None:
        corpus_texts = list(read_examples(req.corpus, req.text_field, None).texts) + corpus_texts
    names = label_names(labeled.labels)
    if len(names) < 2:
        raise DataError(f"{req.labeled}: at least two different labels are needed, found {len(names)}")
    corpus = Examples(tuple(corpus_texts), (None,) * len(corpus_texts))
    files = {"train.jsonl": dump_jsonl(corpus), "labeled.jsonl": dump_jsonl(labeled),
             "labels.json": (json.dumps({"labels": names}) + "\n").encode()}
    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:16]
    prefix = f"datasets/train-{digest}"
    if not is_done(store, prefix):
        for name, data in files.items():
            store.write_bytes(f"{prefix}/{name}", data)
        store.write_bytes(f"{prefix}/{MARKER}", json.dumps({"corpus": len(corpus), "labeled": len(labeled)}).encode())
    return prefix, corpus, labeled


def corpus_clustering(clustering: ClusteringSpec, prefix: str) -> StepSpec:
    return StepSpec("cluster", clustering_params(clustering), {"dataset": prefix}, label="corpus")


def training_plan(req: TrainRequest, setting: str, prefix: str) -> Plan:
    protocol: TrainSpec = StrongSpec() if req.protocol == "strong" else TrainSpec()
    steps: dict[str, StepSpec] = {}
    clusterings = {}
    encoder: dict[str, str] = {}
    if setting == "clust":
        clust = corpus_clustering(req.clustering, prefix)
        inter = StepSpec("intertrain", {"setting": "clust", "model": req.model, "seed": req.seed,
                                        **dataclasses.asdict(req.intertrain)},
                         {"dataset": prefix, "clusters": clust.prefix}, label="corpus clust")
        steps.update({clust.id: clust, inter.id: inter})
        clusterings["corpus"] = clust.id
        encoder = {"encoder": inter.prefix}
    fit = StepSpec("fit", {"model": req.model, "seed": req.seed, **dataclasses.asdict(protocol)},
                   {"dataset": prefix, **encoder}, label=f"fit {setting} ({req.protocol})")
    steps[fit.id] = fit
    return Plan(steps, (), clusterings)


def labeled_agreement(store: Store, clust: StepSpec, corpus: Examples, labeled: Examples) -> dict:
    """NMI and AMI between the clusters and the labels, on the labeled texts alone."""
    from sklearn.metrics import normalized_mutual_info_score

    ids = read_cluster_ids(store, clust.prefix)
    mine = ids[len(corpus) - len(labeled):]  # the labeled texts close the corpus
    return {"labeled_nmi": float(normalized_mutual_info_score(list(labeled.labels), mine)),
            "labeled_ami": sample_agreement(mine, list(labeled.labels))}


def check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"output folder {out} exists and is not empty")


def export_model(store: Store, fit_prefix: str, out: Path) -> None:
    """Copy the trained model folder to ``out`` (written beside it, then renamed into place)."""
    source = store.fetch_dir(f"{fit_prefix}/model")
    out = out.expanduser().resolve()
    check_output(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".complete"))
    if out.exists():
        out.rmdir()
    tmp.rename(out)


def run_training(store: Store, req: TrainRequest, on_event) -> tuple[bool, dict]:
    check_output(req.out)
    prefix, corpus, labeled = stage_training_data(store, req)
    backend = LocalBackend(store)
    agreement: dict = {}
    setting = req.setting
    if setting in ("auto", "clust"):
        if len(corpus) < req.clustering.n_clusters:
            raise DataError(f"the corpus has {len(corpus)} texts, fewer than n_clusters={req.clustering.n_clusters}")
        clust = corpus_clustering(req.clustering, prefix)
        result = backend.run(Plan({clust.id: clust}, (), {}), on_event)
        if not result.ok:
            return False, {"failed": result.failed}
        agreement = labeled_agreement(store, clust, corpus, labeled)
        if setting == "auto":
            setting = advise(agreement["labeled_ami"])
    plan = training_plan(req, setting, prefix)
    result = backend.run(plan, on_event)
    if not result.ok:
        return False, {"failed": result.failed}
    fit = next(s for s in plan.steps.values() if s.kind == "fit")
    export_model(store, fit.prefix, req.out)
    info = {"corpus": len(corpus), "labeled": len(labeled), "labels": label_names(labeled.labels),
            "setting": setting, "asked": req.setting, "protocol": req.protocol, **agreement,
            "advice_threshold": THRESHOLD if req.setting == "auto" else None}
    (req.out / "ctune.json").write_text(json.dumps(info, indent=2) + "\n")
    return True, info


def suggest(store: Store, corpus_path: Path, budget: int, clustering: ClusteringSpec, text_field: str,
            on_event, seed: int = 0) -> list[dict]:
    """The ``budget`` texts to label first: spread over the clusters by size."""
    from jobs.cells import cluster_sample_indices

    corpus = read_examples(corpus_path, text_field, None)
    if budget > len(corpus):
        raise DataError(f"--budget {budget} is larger than the corpus ({len(corpus)} texts)")
    if len(corpus) < clustering.n_clusters:
        raise DataError(f"the corpus has {len(corpus)} texts, fewer than n_clusters={clustering.n_clusters}")
    data = dump_jsonl(corpus)
    prefix = f"datasets/corpus-{hashlib.sha256(data).hexdigest()[:16]}"
    if not is_done(store, prefix):
        store.write_bytes(f"{prefix}/train.jsonl", data)
        store.write_bytes(f"{prefix}/{MARKER}", json.dumps({"corpus": len(corpus)}).encode())
    clust = corpus_clustering(clustering, prefix)
    result = LocalBackend(store).run(Plan({clust.id: clust}, (), {}), on_event)
    if not result.ok:
        raise DataError(f"clustering the corpus failed: {next(iter(result.failed.values())).splitlines()[-1]}")
    ids = read_cluster_ids(store, clust.prefix)
    picked = cluster_sample_indices(ids, budget, 0, seed)
    return [{"index": int(i), "cluster": int(ids[i]), "text": corpus.texts[i]} for i in picked]


def read_texts(path: Path, text_field: str) -> list[str]:
    if path.suffix == ".txt":
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise DataError(f"{path}: file is empty")
        return texts
    return list(read_examples(path, text_field, None).texts)


def predict(model_dir: Path, texts: list[str], max_length: int = 128) -> list[dict]:
    import numpy as np
    from transformers import AutoModelForSequenceClassification

    from jobs import models

    if not (model_dir / "config.json").is_file():
        raise DataError(f"{model_dir} is not a model folder (no config.json)")
    tokenizer = models.load_tokenizer(str(model_dir))
    model = models.load_pretrained(AutoModelForSequenceClassification.from_pretrained, str(model_dir))
    logits = models.predict_logits(model, tokenizer, texts, max_length)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    names = [model.config.id2label[i] for i in range(probs.shape[1])]
    return [{"text": t, "label": names[int(p.argmax())], "score": float(p.max()),
             "scores": {n: float(v) for n, v in zip(names, p)}} for t, p in zip(texts, probs)]


def write_predictions(rows: list[dict], fmt: str, out) -> None:
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    names = list(rows[0]["scores"]) if rows else []
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "score", *[f"score_{n}" for n in names]])
    for r in rows:
        writer.writerow([r["text"], r["label"], f"{r['score']:.6f}", *[f"{r['scores'][n]:.6f}" for n in names]])
