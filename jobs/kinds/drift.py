"""The ``drift`` step of a retraining round: what changed in the corpus since the version in
use, and which texts to label next (``jobs.lib.drift`` holds the tests and the picking).

It reads the round's clustered texts and their clusters, the version in use's corpus index
(one digest per text it was trained on) and model, the new model (the round's ``fit`` step)
and, when given, the dev set. Both models label at most ``pool`` new and ``pool`` old texts,
so the step's cost is bounded whatever the corpus' size.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.inputs import CLASSIFIER, CLUSTERS, DATASET, DEV
from jobs.contract.layout import STEP_FILE
from jobs.contract.outputs import DRIFT, MODEL, TO_LABEL, read_cluster_ids, read_cluster_summary
from jobs.contract.params import DriftParams
from jobs.contract.staging import TRAIN, read_split
from jobs.contract.steps import StepSpec
from jobs.lib import drift, models
from jobs.lib.runner import StepContext


def read_uri(uri: str) -> bytes:
    """A file's bytes from an ``s3://`` URI or a path on this machine."""
    from jobs.storage import StoreError, open_store, split_s3_uri

    try:
        if uri.startswith("s3://"):
            root, key = split_s3_uri(uri)
            return open_store(root).read_bytes(key)
        return Path(uri).read_bytes()
    except (StoreError, OSError) as exc:
        raise JobError(f"cannot read {uri}: {exc}") from None


def _previous_index(params: DriftParams) -> np.ndarray | None:
    if not params.current_index:
        return None
    index = np.load(io.BytesIO(read_uri(params.current_index)), allow_pickle=False)
    if index.dtype != np.uint64 or index.ndim != 1:
        raise JobError(f"{params.current_index}: not a corpus index (unsigned 64-bit digests), {index.dtype}")
    return index


def _labels(folder: str, texts: list[str], max_length: int) -> tuple[list[str], list[float]]:
    from jobs.lib.predict import predict

    rows = predict(Path(folder), texts, max_length) if texts else []
    return [r["label"] for r in rows], [r["score"] for r in rows]


def _pool(new: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``size`` new and ``size`` old texts, drawn at random."""
    fresh, old = np.flatnonzero(new), np.flatnonzero(~new)
    take = [np.sort(rng.choice(ix, size=min(size, len(ix)), replace=False)) for ix in (fresh, old)]
    return take[0], take[1]


def _examples(texts: tuple[str, ...], ids: np.ndarray, new: np.ndarray, cluster: int, n: int,
              rng: np.random.Generator) -> list[str]:
    members = np.flatnonzero((ids == cluster) & new)
    return [texts[i][:300] for i in sorted(rng.choice(members, size=min(n, len(members)), replace=False))]


def _dev_coverage(ctx: StepContext[DriftParams], texts: tuple[str, ...], ids: np.ndarray, new: np.ndarray) -> dict | None:
    if not ctx.has_input(DEV):
        return None
    from jobs.lib.textfeatures import StemmedBagOfWords

    clustering = StepSpec.from_json(ctx.store.read_bytes(f"{ctx.input(CLUSTERS)}/{STEP_FILE}").decode()).params
    bow = StemmedBagOfWords(max_features=getattr(clustering, "max_features", 10000))
    counts = bow.fit_transform(list(texts))
    dev = read_split(ctx.store, ctx.input(DEV), TRAIN)
    log_probs = drift.cluster_log_probs(counts, ids, int(ids.max()) + 1)
    placed = drift.nearest_clusters(bow.transform(list(dev.texts)), log_probs)
    return drift.dev_coverage(ids, new, placed, ctx.params.min_dev)


def _emerging(ctx: StepContext[DriftParams], data, ids: np.ndarray, new: np.ndarray,
              rng: np.random.Generator) -> list[dict]:
    top = read_cluster_summary(ctx.store, ctx.input(CLUSTERS)).get("top_terms", {})
    emerging = drift.emerging_clusters(ids, new, ctx.params.alpha)
    for e in emerging:
        e["top_stems"] = list(top.get(str(e["cluster"]), []))[:10]
        e["examples"] = _examples(data.texts, ids, new, e["cluster"], ctx.params.examples, rng)
    return emerging


def _batch_rows(data, ids: np.ndarray, pool: np.ndarray, mine: list[str], confidence: list[float],
                theirs: list[str], emerging: set[int], p: DriftParams) -> tuple[list[dict], int]:
    """The texts to label next, as ``to_label.jsonl`` rows, and how many the versions disagree on."""
    unlabeled = {int(i) for i, y in enumerate(data.labels) if y is None}
    candidates = [drift.Candidate(int(i), int(ids[i]), bool(theirs) and theirs[j] != mine[j], confidence[j])
                  for j, i in enumerate(pool) if int(i) in unlabeled]
    batch = drift.pick_batch(candidates, p.batch, emerging, p.emerging_weight)
    at = {int(i): j for j, i in enumerate(pool)}
    rows = [{"text": data.texts[c.index], "label": None, "suggested": mine[at[c.index]],
             "current": theirs[at[c.index]] if theirs else None, "confidence": round(c.confidence, 4),
             "cluster": c.cluster, "emerging": c.cluster in emerging,
             "why": "the versions disagree" if c.disagree else "least confident"} for c in batch]
    return rows, sum(c.disagree for c in batch)


def run(ctx: StepContext[DriftParams]) -> dict:
    models.configure_threads()
    p = ctx.params
    data = read_split(ctx.store, ctx.input(DATASET), TRAIN)
    ids = np.asarray(read_cluster_ids(ctx.store, ctx.input(CLUSTERS)), dtype=int)
    if len(ids) != len(data):
        raise JobError(f"{len(ids)} cluster ids for {len(data)} corpus texts")
    previous = _previous_index(p)
    compared = previous is not None
    new = drift.is_new(data.texts, previous)
    rng = np.random.default_rng(p.seed)
    emerging = _emerging(ctx, data, ids, new, rng) if compared else []
    fresh, old = _pool(new, p.pool, rng)
    pool = np.concatenate([fresh, old])
    pool_texts = [data.texts[i] for i in pool]
    ctx.progress("labeling the pool with the new version", "texts")
    mine, confidence = _labels(str(ctx.store.fetch_dir(f"{ctx.input(CLASSIFIER)}/{MODEL}")), pool_texts, p.max_length)
    theirs: list[str] = []
    if p.current_model:
        ctx.progress("labeling the pool with the version in use", "texts")
        theirs, _ = _labels(models.resolve_model(p.current_model), pool_texts, p.max_length)
    shift = drift.label_shift(theirs[len(fresh):], theirs[:len(fresh)], sorted(set(theirs) | set(mine)),
                              p.alpha) if theirs else None
    rows, disagree = _batch_rows(data, ids, pool, mine, confidence, theirs, {e["cluster"] for e in emerging}, p)
    report = {"against": p.current_version or None, "compared": compared,
              "texts": len(data), "new": int(new.sum()), "new_share": round(float(new.mean()), 4),
              "clusters": int(ids.max()) + 1, "alpha": p.alpha, "emerging": emerging, "labels": shift,
              "dev_coverage": _dev_coverage(ctx, data.texts, ids, new) if compared else None,
              "pool": {"new": len(fresh), "old": len(old)},
              "batch": {"texts": len(rows), "disagree": disagree, "emerging": sum(bool(r["emerging"]) for r in rows),
                        "clusters": len({r["cluster"] for r in rows})}}
    ctx.put_json(DRIFT, report)
    ctx.put_bytes(TO_LABEL, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    return {"new": report["new"], "emerging": len(emerging), "batch": len(rows), **models.device_record()}
