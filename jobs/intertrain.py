"""The ``intertrain`` step: train the encoder to predict cluster ids, then drop the head."""

from __future__ import annotations

import json
import logging
import time

from jobs import models
from jobs.datasets import read_split
from jobs.step import JobError, StepContext

log = logging.getLogger(__name__)


def starting_model(ctx: StepContext) -> str:
    """The base model name, or the folder of an upstream inter-trained encoder."""
    if "encoder" in ctx.spec.inputs:
        return str(ctx.store.fetch_dir(f"{ctx.input('encoder')}/model"))
    return ctx.params["model"]


def run(ctx: StepContext) -> dict:
    params = ctx.params
    if params.get("setting") != "clust":
        raise JobError(f"unknown inter-training setting {params.get('setting')!r} (known: clust)")
    models.configure_threads()
    train = read_split(ctx.store, ctx.input("dataset"), "train")
    assignments = json.loads(ctx.store.read_bytes(f"{ctx.input('clusters')}/assignments.json"))["labels"]
    if len(assignments) != len(train):
        raise JobError(f"{len(assignments)} cluster ids for {len(train)} train texts")
    n_clusters = max(assignments) + 1
    args = models.TrainArgs.from_params(dict(params), epochs=1, group_by_length=True)
    source = starting_model(ctx)
    tokenizer = models.load_tokenizer(source)
    seed = int(params.get("seed", 0))
    model = models.load_classifier(source, n_clusters, seed)
    t0 = time.time()
    last = [0.0]

    def progress(step: int, loss: float) -> None:
        if time.time() - last[0] > 30:
            last[0] = time.time()
            log.info("inter-training step %d, loss %.3f", step, loss)

    stats = models.train_classifier(model, tokenizer, list(train.texts), assignments, args,
                                    seed=seed, progress=progress)
    t1 = time.time()
    folder = ctx.scratch / "model"
    models.save_encoder(model, tokenizer, folder)
    ctx.put_dir(folder, "model")
    ctx.extra["timings"] = {"train_s": round(t1 - t0, 3)}
    summary = {**stats, "n_texts": len(train), "n_clusters": n_clusters, "device": str(models.device()),
               "texts_per_s": round(len(train) * args.epochs / max(t1 - t0, 1e-9), 2)}
    ctx.put_json("train.json", summary)
    return summary
