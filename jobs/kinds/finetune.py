"""The ``finetune`` step: fine-tune on a labeled sample of the train set, evaluate on test.

Several cells in one process (a pack) read their encoder, tokenizer and token ids once.
"""

from __future__ import annotations

import logging
import time

from jobs.contract.params import FinetuneParams
from jobs.contract.staging import TEST, TRAIN
from jobs.lib import models
from jobs.lib.cells import load_cell_data, write_cell
from jobs.lib.inference import predict_logits
from jobs.lib.runner import StepContext
from jobs.lib.tokens import split_tokens
from jobs.lib.training import train_classifier

log = logging.getLogger(__name__)


def run(ctx: StepContext[FinetuneParams]) -> dict:
    params = ctx.params
    models.configure_threads()
    data = load_cell_data(ctx)
    source = ctx.starting_model()
    tokenizer = models.load_tokenizer(source)
    dataset = ctx.input("dataset")
    train = split_tokens(ctx.store, dataset, TRAIN, tokenizer, params.max_length).take(data.sample)
    test = split_tokens(ctx.store, dataset, TEST, tokenizer, params.max_length)
    seed = params.seed + params.repetition
    model = models.load_classifier(source, len(data.names), seed)
    t0 = time.time()
    stats = train_classifier(model, train, data.sample_labels, params, seed)
    t1 = time.time()
    logits = predict_logits(model, test, params.max_length)
    t2 = time.time()
    ctx.timings.update(train_s=round(t1 - t0, 3), eval_s=round(t2 - t1, 3))
    metrics = write_cell(ctx, data, logits.argmax(axis=1).tolist(),
                         {**stats, "device": str(models.device()), **ctx.timings})
    log.info("budget %s rep %s: accuracy %.4f", params.budget, params.repetition, metrics["accuracy"])
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
