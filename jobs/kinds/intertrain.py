"""The ``intertrain`` step: train the encoder on an objective over the corpus, then drop the head.

The objective (``params.objective``) is the module ``jobs.objectives.<objective>``.
"""

from __future__ import annotations

import importlib
import logging

from jobs.contract.inputs import DATASET
from jobs.contract.intertrainings import objective
from jobs.contract.outputs import MODEL, TRAIN_SUMMARY
from jobs.contract.params import IntertrainParams
from jobs.contract.staging import TRAIN, read_split
from jobs.lib import models
from jobs.lib.runner import StepContext

log = logging.getLogger(__name__)


def run(ctx: StepContext[IntertrainParams]) -> dict:
    name = objective(ctx.params.objective).name
    module = importlib.import_module(f"jobs.objectives.{name}")
    models.configure_threads()
    texts = list(read_split(ctx.store, ctx.input(DATASET), TRAIN).texts)
    model, tokenizer, stats = module.train(ctx, texts, ctx.starting_model(),
                                           ctx.progress(f"{name} inter-training"))
    folder = ctx.scratch / MODEL
    models.save_encoder(model, tokenizer, folder)
    ctx.put_dir(folder, MODEL)
    ctx.timings["train_s"] = stats["train_s"]
    summary = {**stats, "setting": name, "n_texts": len(texts), **models.device_record()}
    ctx.put_json(TRAIN_SUMMARY, summary)
    return summary
