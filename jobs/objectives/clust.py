"""Cluster inter-training (the paper's BERT_IT:CLUST): predict each text's cluster id."""

from __future__ import annotations

import time
from collections.abc import Sequence

from jobs.contract.errors import JobError
from jobs.contract.inputs import CLUSTERS, DATASET
from jobs.contract.outputs import read_cluster_ids
from jobs.contract.params import IntertrainParams
from jobs.contract.staging import TRAIN
from jobs.lib import models
from jobs.lib.runner import StepContext
from jobs.lib.tokens import split_tokens
from jobs.lib.training import Progress, train_classifier


def train(ctx: StepContext[IntertrainParams], texts: Sequence[str], source: str,
          progress: Progress) -> tuple[object, object, dict]:
    assignments = read_cluster_ids(ctx.store, ctx.input(CLUSTERS))
    if len(assignments) != len(texts):
        raise JobError(f"{len(assignments)} cluster ids for {len(texts)} corpus texts")
    n_clusters = max(assignments) + 1
    options = ctx.params.options
    tokenizer = models.load_tokenizer(source)
    tokens = split_tokens(ctx.store, ctx.input(DATASET), TRAIN, tokenizer, options.max_length)
    model = models.load_classifier(source, n_clusters, ctx.params.seed)
    t0 = time.time()
    stats = train_classifier(model, tokens, assignments, options, ctx.params.seed, group_by_length=True,
                             progress=progress)
    seconds = time.time() - t0
    stats.update(n_clusters=n_clusters, train_s=round(seconds, 3),
                 texts_per_s=round(len(texts) * options.epochs / max(seconds, 1e-9), 2))
    return model, tokenizer, stats
