"""The ``evaluate`` step: a trained model folder's labels for a dev set's texts, and each
label's probability, as ``ctune predict`` gives them (``jobs.lib.predict``). The registry's gate scores them; the step
is cached like any other, so scoring the same version on the same dev set runs once."""

from __future__ import annotations

from pathlib import Path

from jobs.contract.inputs import DATASET
from jobs.contract.outputs import DEV_LABELS
from jobs.contract.params import EvaluateParams
from jobs.contract.staging import TRAIN, read_split
from jobs.lib import models
from jobs.lib.predict import predict
from jobs.lib.runner import StepContext


def run(ctx: StepContext[EvaluateParams]) -> dict:
    models.configure_threads()
    folder = Path(models.resolve_model(ctx.params.model))
    texts = list(read_split(ctx.store, ctx.input(DATASET), TRAIN).texts)
    rows = predict(folder, texts, ctx.params.max_length)
    names = list(rows[0]["scores"]) if rows else []
    ctx.put_json(DEV_LABELS, {"labels": [r["label"] for r in rows], "names": names,
                              "probabilities": [[round(r["scores"][n], 6) for n in names] for r in rows]})
    return {"texts": len(rows), **models.device_record()}
