"""The ``embed`` step: frozen mean-pooled embeddings of every train and test text.

Computed once per (dataset, encoder); every linear-probe cell of every budget and
repetition then trains a logistic regression on them in seconds.
"""

from __future__ import annotations

import io
import time

import numpy as np

from jobs import models
from jobs.datasets import read_split
from jobs.intertrain import starting_model
from jobs.step import StepContext


def to_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def run(ctx: StepContext) -> dict:
    models.configure_threads()
    source = starting_model(ctx)
    tokenizer = models.load_tokenizer(source)
    encoder = models.load_encoder(source)
    max_length = int(ctx.params.get("max_length", 128))
    shapes = {}
    t0 = time.time()
    for split in ("train", "test"):
        if split == "test" and not ctx.store.exists(f"{ctx.input('dataset')}/test.jsonl"):
            continue  # a clustering corpus has no test split
        texts = list(read_split(ctx.store, ctx.input("dataset"), split).texts)
        vectors = models.embed_mean(encoder, tokenizer, texts, max_length)
        ctx.put_bytes(f"{split}.npy", to_npy(vectors))
        shapes[split] = list(vectors.shape)
    ctx.extra["timings"] = {"embed_s": round(time.time() - t0, 3)}
    return {"shapes": shapes, "device": str(models.device())}
