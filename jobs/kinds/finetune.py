"""The ``finetune`` step: fine-tune on a labeled sample of the train set, evaluate on test.

Several cells in one process (a pack) read their encoder, tokenizer and token ids once.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from jobs.contract.inputs import DATASET
from jobs.contract.params import FinetuneParams
from jobs.contract.staging import TEST, TRAIN
from jobs.lib import models
from jobs.lib.cells import CellData, load_cell_data, train_cluster_ids, write_cell
from jobs.lib.inference import predict_logits
from jobs.lib.probabilities import softmax
from jobs.lib.runner import StepContext
from jobs.lib.selftrain import kept_accuracy, pseudo_labels, second_stage
from jobs.lib.tokens import split_tokens
from jobs.lib.training import train_classifier

log = logging.getLogger(__name__)


def _self_train(ctx: StepContext[FinetuneParams], data: CellData, model, tokenizer, source: str, seed: int,
                first: dict):
    """Label the train texts with ``model``, keep the confident ones (jobs.lib.selftrain), and
    fine-tune the starting encoder again on the labeled and kept texts."""
    params = ctx.params
    options = params.self_training
    assert options is not None
    everything = split_tokens(ctx.store, ctx.input(DATASET), TRAIN, tokenizer, params.max_length)
    probs = softmax(predict_logits(model, everything, params.max_length, ctx.progress("pseudo-labeling", "texts")))
    clusters = np.asarray(train_cluster_ids(ctx, len(data.train))) if options.agree == "cluster" else None
    rows, labels = pseudo_labels(probs, options, data.sample, clusters)
    log.info("self-training: %d pseudo-labeled train texts kept of %d", len(rows), len(everything))
    student = models.load_classifier(source, len(data.names), seed)
    union = np.concatenate([data.sample, rows])
    stats = train_classifier(student, everything.take(union), [*data.sample_labels, *labels.tolist()],
                             second_stage(params), seed, progress=ctx.progress("self-training"))
    return student, {**stats, "first_optimizer_steps": first["optimizer_steps"], "pseudo_labeled": len(rows),
                     **kept_accuracy(rows, labels, data.train.labels, data.names)}


def run(ctx: StepContext[FinetuneParams]) -> dict:
    params = ctx.params
    models.configure_threads()
    data = load_cell_data(ctx)
    source = ctx.starting_model()
    tokenizer = models.load_tokenizer(source)
    dataset = ctx.input(DATASET)
    train = split_tokens(ctx.store, dataset, TRAIN, tokenizer, params.max_length).take(data.sample)
    test = split_tokens(ctx.store, dataset, TEST, tokenizer, params.max_length)
    seed = params.seed + params.repetition
    model = models.load_classifier(source, len(data.names), seed)
    t0 = time.time()
    stats = train_classifier(model, train, data.sample_labels, params, seed, progress=ctx.progress("fine-tuning"))
    if params.self_training is not None:
        model, stats = _self_train(ctx, data, model, tokenizer, source, seed, stats)
    t1 = time.time()
    logits = predict_logits(model, test, params.max_length, ctx.progress("evaluating", "texts"))
    t2 = time.time()
    ctx.timings.update(train_s=round(t1 - t0, 3), eval_s=round(t2 - t1, 3))
    metrics = write_cell(ctx, data, logits.argmax(axis=1).tolist(),
                         {**stats, **models.device_record(), **ctx.timings})
    log.info("budget %s rep %s: accuracy %.4f", params.budget, params.repetition, metrics["accuracy"])
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
