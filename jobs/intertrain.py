"""The ``intertrain`` step: train the encoder to predict cluster ids, then drop the head."""

from __future__ import annotations

import logging
import time

from jobs import models
from jobs.datasets import read_cluster_ids, read_split
from jobs.step import JobError, StepContext

log = logging.getLogger(__name__)


def starting_model(ctx: StepContext) -> str:
    """The base model name, or the folder of an upstream inter-trained encoder."""
    if "encoder" in ctx.spec.inputs:
        return str(ctx.store.fetch_dir(f"{ctx.input('encoder')}/model"))
    return ctx.params["model"]


def _progress(what: str):
    last = [0.0]

    def report(step: int, loss: float) -> None:
        if time.time() - last[0] > 30:
            last[0] = time.time()
            log.info("%s step %d, loss %.3f", what, step, loss)

    return report


def _cluster_training(ctx: StepContext, texts: list[str], source: str, seed: int):
    assignments = read_cluster_ids(ctx.store, ctx.input("clusters"))
    if len(assignments) != len(texts):
        raise JobError(f"{len(assignments)} cluster ids for {len(texts)} train texts")
    n_clusters = max(assignments) + 1
    args = models.TrainArgs.from_params(dict(ctx.params), epochs=1, group_by_length=True)
    tokenizer = models.load_tokenizer(source)
    model = models.load_classifier(source, n_clusters, seed)
    t0 = time.time()
    stats = models.train_classifier(model, tokenizer, texts, assignments, args, seed=seed,
                                    progress=_progress("inter-training"))
    stats.update(n_clusters=n_clusters, train_s=round(time.time() - t0, 3),
                 texts_per_s=round(len(texts) * args.epochs / max(time.time() - t0, 1e-9), 2))
    return model, tokenizer, stats


def run(ctx: StepContext) -> dict:
    setting = ctx.params.get("setting")
    if setting not in ("clust", "mlm"):
        raise JobError(f"unknown inter-training setting {setting!r} (known: clust, mlm)")
    models.configure_threads()
    texts = list(read_split(ctx.store, ctx.input("dataset"), "train").texts)
    source = starting_model(ctx)
    seed = int(ctx.params.get("seed", 0))
    if setting == "clust":
        model, tokenizer, stats = _cluster_training(ctx, texts, source, seed)
    else:
        from jobs.mlm import run_mlm

        model, tokenizer, stats = run_mlm(ctx, texts, source, seed, _progress("masked-LM"))
    folder = ctx.scratch / "model"
    models.save_encoder(model, tokenizer, folder)
    ctx.put_dir(folder, "model")
    ctx.extra["timings"] = {"train_s": stats["train_s"]}
    summary = {**stats, "setting": setting, "n_texts": len(texts), "device": str(models.device())}
    ctx.put_json("train.json", summary)
    return summary
