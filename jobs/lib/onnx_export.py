"""A trained model folder (``fit``'s) as one ONNX graph: token ids and attention mask in, each
label's probability out (``jobs.serving`` says what the folder holds).

For a probe or concatenated probe (``probe_head.json``): the encoder(s), their mean pooling
over the real tokens and the logistic regression's softmax; for a fine-tuned classifier: the
model and a softmax over its logits. No ``token_type_ids`` input: the torch path never passes
one either (every text is one segment). Opset 18, IR version 8 and one file (no external
weights): what onnxruntime 1.14+ and Triton's ONNX backend (23.x on) load.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from jobs.contract.errors import JobError
from jobs.lib import models
from jobs.lib.probe_head import read_head
from jobs.serving import GRAPH, INPUTS, INT8, LABELS, OUTPUT, TOKENIZER

OPSET = 18
IR_VERSION = 8
"""The IR version of opset 18 (onnx 1.13): runtimes older than the exporter's default load it."""


class _Probe(torch.nn.Module):
    """Encoders -> mean pooling over the real tokens -> concatenated -> linear -> softmax."""

    def __init__(self, encoders: list, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.encoders = torch.nn.ModuleList(encoders)
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            self.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = []
        for encoder in self.encoders:
            hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            pooled.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
        return torch.softmax(self.head(torch.cat(pooled, dim=-1)), dim=-1)


class _Finetuned(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)


def classifier_module(folder: Path, max_length: int) -> tuple[torch.nn.Module, list[str], int]:
    """The folder's whole classifier as one module, its labels and the length it reads."""
    from transformers import AutoModelForSequenceClassification

    head = read_head(folder)
    if head is not None:
        folders = [folder, *([folder / head["beside"]] if head.get("beside") else [])]
        module: torch.nn.Module = _Probe([models.load_encoder(str(f)) for f in folders],
                                         np.asarray(head["weight"], float), np.asarray(head["bias"], float))
        return module.eval(), list(head["labels"]), int(head.get("max_length", max_length))
    model = models.load_pretrained(AutoModelForSequenceClassification.from_pretrained, str(folder))
    names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    return _Finetuned(model).eval(), names, max_length


def _sample_inputs(tokenizer, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(["an example text to trace the graph with", "a second, shorter one"], truncation=True,
                      max_length=max_length, padding=True, return_token_type_ids=False, return_tensors="pt")
    return batch["input_ids"].to(torch.int64), batch["attention_mask"].to(torch.int64)


def _export_graph(module: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    import onnx

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: sequence} for name in INPUTS}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, inputs, input_names=list(INPUTS), output_names=[OUTPUT],
                                        dynamic_shapes=shapes, opset_version=OPSET, dynamo=True,
                                        external_data=False, verbose=False, report=False)
        except Exception as exc:  # the exporter raises many types; the step says which and why
            raise JobError(f"the ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    graph = program.model_proto if program is not None else None
    if graph is None:
        raise JobError("the ONNX export returned no graph")
    graph.ir_version = IR_VERSION
    onnx.checker.check_model(graph)
    onnx.save_model(graph, str(path))


def _tokenizer_file(tokenizer, max_length: int, path: Path) -> None:
    """The fast tokenizer's definition with the truncation and padding the model was trained with."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise JobError("the model's tokenizer has no fast (tokenizers) version: it cannot be exported for ONNX")
    standalone = Tokenizer.from_str(backend.to_str())
    standalone.enable_truncation(max_length)
    standalone.enable_padding(pad_id=int(tokenizer.pad_token_id), pad_token=str(tokenizer.pad_token))
    standalone.save(str(path))


def export(folder: Path, out: Path, max_length: int = 128) -> dict:
    """Write ``GRAPH``, ``TOKENIZER`` and ``LABELS`` for the model folder into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    module, names, length = classifier_module(folder, max_length)
    tokenizer = models.load_tokenizer(str(folder))
    _export_graph(module, _sample_inputs(tokenizer, length), out / GRAPH)
    _tokenizer_file(tokenizer, length, out / TOKENIZER)
    meta = {"labels": names, "max_length": length, "inputs": list(INPUTS), "output": OUTPUT, "opset": OPSET}
    (out / LABELS).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def quantize(out: Path) -> None:
    """``INT8`` beside ``GRAPH``: dynamic int8 quantization of the weights (onnxruntime's)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantizer logs its progress on the root logger
        try:
            quantize_dynamic(str(out / GRAPH), str(out / INT8), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
