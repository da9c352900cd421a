"""Cluster inter-training (the paper's BERT_IT:CLUST): predict each text's cluster id."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from jobs.contract.errors import JobError
from jobs.contract.outputs import read_cluster_ids
from jobs.contract.params import IntertrainParams
from jobs.lib import models
from jobs.lib.runner import StepContext


def train(ctx: StepContext[IntertrainParams], texts: Sequence[str], source: str,
          progress: Callable[[int, float], None]) -> tuple[object, object, dict]:
    assignments = read_cluster_ids(ctx.store, ctx.input("clusters"))
    if len(assignments) != len(texts):
        raise JobError(f"{len(assignments)} cluster ids for {len(texts)} corpus texts")
    n_clusters = max(assignments) + 1
    args = models.TrainArgs(ctx.params.options, group_by_length=True)
    tokenizer = models.load_tokenizer(source)
    model = models.load_classifier(source, n_clusters, ctx.params.seed)
    t0 = time.time()
    stats = models.train_classifier(model, tokenizer, texts, assignments, args, seed=ctx.params.seed,
                                    progress=progress)
    seconds = time.time() - t0
    stats.update(n_clusters=n_clusters, train_s=round(seconds, 3),
                 texts_per_s=round(len(texts) * args.epochs / max(seconds, 1e-9), 2))
    return model, tokenizer, stats
