"""The ``embed`` step: frozen mean-pooled embeddings of every train and test text.

Computed once per (dataset, encoder); every linear-probe cell of every budget and
repetition then trains a logistic regression on them in seconds.
"""

from __future__ import annotations

import time

from jobs.contract.inputs import DATASET
from jobs.contract.outputs import EMBEDDINGS, npy_bytes
from jobs.contract.params import EmbedParams
from jobs.contract.staging import TEST, TRAIN, has_split
from jobs.lib import models
from jobs.lib.inference import embed_mean
from jobs.lib.runner import StepContext
from jobs.lib.tokens import split_tokens


def run(ctx: StepContext[EmbedParams]) -> dict:
    models.configure_threads()
    source = ctx.starting_model()
    tokenizer = models.load_tokenizer(source)
    encoder = models.load_encoder(source)
    dataset = ctx.input(DATASET)
    shapes = {}
    t0 = time.time()
    for split in (TRAIN, TEST):
        if not has_split(ctx.store, dataset, split):
            continue  # a clustering corpus has no test split
        tokens = split_tokens(ctx.store, dataset, split, tokenizer, ctx.params.max_length)
        vectors = embed_mean(encoder, tokens, ctx.params.max_length, ctx.progress(f"embedding {split}", "texts"))
        ctx.put_bytes(EMBEDDINGS.format(split=split), npy_bytes(vectors))
        shapes[split] = list(vectors.shape)
    ctx.timings["embed_s"] = round(time.time() - t0, 3)
    return {"shapes": shapes, **models.device_record()}
