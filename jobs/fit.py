"""The ``fit`` step: fine-tune on every labeled example given and keep the classifier.

The saved folder is a plain ``transformers`` sequence-classification model with the
label names in its config (``id2label``), loadable without this package.
"""

from __future__ import annotations

import time

from jobs import models
from jobs.datasets import read_label_names, read_split
from jobs.intertrain import starting_model
from jobs.step import JobError, StepContext


def run(ctx: StepContext) -> dict:
    models.configure_threads()
    dataset = ctx.input("dataset")
    labeled = read_split(ctx.store, dataset, "labeled")
    names = read_label_names(ctx.store, dataset)
    index = {n: i for i, n in enumerate(names)}
    if not labeled.labeled:
        raise JobError("every labeled example needs a label")
    args = models.TrainArgs.from_params(dict(ctx.params))
    source = starting_model(ctx)
    seed = int(ctx.params.get("seed", 0))
    tokenizer = models.load_tokenizer(source)
    model = models.load_classifier(source, len(names), seed)
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = index
    t0 = time.time()
    stats = models.train_classifier(model, tokenizer, list(labeled.texts), [index[y] for y in labeled.labels],
                                    args, seed=seed)
    stats["train_s"] = round(time.time() - t0, 3)
    folder = ctx.scratch / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ctx.put_dir(folder, "model")
    ctx.extra["timings"] = {"train_s": stats["train_s"]}
    summary = {**stats, "n_labeled": len(labeled), "labels": names, "device": str(models.device())}
    ctx.put_json("fit.json", summary)
    return summary
