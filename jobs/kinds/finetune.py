"""The ``finetune`` step: fine-tune on a labeled sample of the train set, evaluate on test."""

from __future__ import annotations

import logging
import time

from jobs.contract.params import FinetuneParams
from jobs.lib import models
from jobs.lib.cells import load_cell_data, write_cell
from jobs.lib.runner import StepContext

log = logging.getLogger(__name__)


def run(ctx: StepContext[FinetuneParams]) -> dict:
    params = ctx.params
    models.configure_threads()
    data = load_cell_data(ctx)
    args = models.TrainArgs(params)
    source = ctx.starting_model()
    tokenizer = models.load_tokenizer(source)
    seed = params.seed + params.repetition
    model = models.load_classifier(source, len(data.names), seed)
    t0 = time.time()
    stats = models.train_classifier(model, tokenizer, data.sample_texts, data.sample_labels, args, seed=seed)
    t1 = time.time()
    logits = models.predict_logits(model, tokenizer, list(data.test.texts), params.max_length)
    t2 = time.time()
    ctx.timings.update(train_s=round(t1 - t0, 3), eval_s=round(t2 - t1, 3))
    metrics = write_cell(ctx, data, logits.argmax(axis=1).tolist(),
                         {**stats, "device": str(models.device()), **ctx.timings})
    log.info("budget %s rep %s: accuracy %.4f", params.budget, params.repetition, metrics["accuracy"])
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
