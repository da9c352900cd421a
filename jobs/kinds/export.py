"""The ``export`` step: a ``fit`` step's classifier as one ONNX graph (``jobs.lib.onnx_export``),
checked before anything may use it: on the dev set, the graph's labels must equal the torch
path's (``ctune predict --runtime torch``) on at least ``min_agreement`` of the texts and no
probability may differ by more than ``max_difference``; otherwise the step fails, and a
registry never holds a version whose graph says other things than its model. The int8 graph
is written too, with its labels on the dev set: whether it is good enough is the gate's to say
(``controller.models.publish``), not this step's.
"""

from __future__ import annotations

import time

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.inputs import CLASSIFIER, DATASET
from jobs.contract.outputs import EXPORT, MODEL, SERVING
from jobs.contract.params import ExportParams
from jobs.contract.staging import TRAIN, read_split
from jobs.lib import models
from jobs.lib.onnx_export import IR_VERSION, OPSET, export, quantize
from jobs.lib.runner import StepContext
from jobs.serving import OnnxClassifier


def _predictions(probs: np.ndarray, names: list[str]) -> dict:
    return {"labels": [names[int(i)] for i in probs.argmax(axis=1)],
            "probabilities": np.round(probs.astype(float), 6).tolist()}


def check(torch_probs: np.ndarray, onnx_probs: np.ndarray, params: ExportParams) -> dict:
    """The graph against the torch path: label agreement and the largest probability difference;
    raises ``JobError`` when either is out of bounds."""
    agreement = float((torch_probs.argmax(axis=1) == onnx_probs.argmax(axis=1)).mean()) if len(torch_probs) else 1.0
    difference = float(np.abs(torch_probs - onnx_probs).max()) if len(torch_probs) else 0.0
    if agreement < params.min_agreement or difference > params.max_difference:
        raise JobError(f"the ONNX graph disagrees with the torch model on the dev set: labels equal on "
                       f"{100 * agreement:.2f}% of {len(torch_probs)} texts (at least {100 * params.min_agreement:g}% "
                       f"needed), largest probability difference {difference:.2e} (at most {params.max_difference:g})")
    return {"agreement": agreement, "max_difference": difference}


def run(ctx: StepContext[ExportParams]) -> dict:
    import os

    from jobs.lib.predict import predict

    # the graph runs on the CPU in fp32, and so does the torch path it is checked against: `ctune
    # predict --runtime torch` on a CPU (a GPU's TF32 or bf16 would differ by more than the bound).
    # Set before CUDA starts in this process (the step's kind is a CPU kind: nothing started it);
    # the accelerator's own choices, not the GPU's bf16 emulated on a CPU
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ[models.ACCELERATOR_ENV] = "auto"
    models.configure_threads()
    p = ctx.params
    folder = ctx.store.fetch_dir(f"{ctx.input(CLASSIFIER)}/{MODEL}")
    texts = list(read_split(ctx.store, ctx.input(DATASET), TRAIN).texts)
    if not texts:
        raise JobError("the dev set has no texts to check the ONNX graph on")
    t0 = time.time()
    rows = predict(folder, texts, p.max_length)
    names = list(rows[0]["scores"])
    reference = np.array([[r["scores"][n] for n in names] for r in rows])
    t1 = time.time()
    out = ctx.scratch / SERVING
    meta = export(folder, out, p.max_length)
    if meta["labels"] != names:
        raise JobError(f"the ONNX graph's labels {meta['labels']} are not the model's {names}")
    t2 = time.time()
    fp32 = OnnxClassifier.load(out).probabilities(texts)
    t3 = time.time()
    summary: dict = {"texts": len(texts), "opset": OPSET, "ir_version": IR_VERSION, "labels": names,
                     **check(reference, fp32, p), "graph_mb": round((out / "model.onnx").stat().st_size / 1e6, 1),
                     "seconds": {"torch": round(t1 - t0, 2), "export": round(t2 - t1, 2), "onnx": round(t3 - t2, 2)}}
    dev = {"fp32": _predictions(fp32, names)}
    if p.int8:
        quantize(out)
        t4 = time.time()
        int8 = OnnxClassifier.load(out, int8=True).probabilities(texts)
        summary["seconds"]["int8"] = round(time.time() - t4, 2)
        summary["int8"] = {"agreement_with_fp32": float((int8.argmax(1) == fp32.argmax(1)).mean()),
                           "max_difference": float(np.abs(int8 - fp32).max()),
                           "graph_mb": round((out / "model.int8.onnx").stat().st_size / 1e6, 1)}
        dev["int8"] = _predictions(int8, names)
    ctx.put_dir(out, SERVING)
    ctx.put_json(EXPORT, {**summary, "dev": dev})
    ctx.timings.update({f"{k}_s": v for k, v in summary["seconds"].items()})
    return {k: v for k, v in summary.items() if k != "labels"}
