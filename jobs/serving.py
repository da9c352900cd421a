"""A version's classifier as one ONNX graph, run with ``onnxruntime`` and ``tokenizers`` alone
(no torch, no transformers): ``ctune predict``'s runtime, batch scoring and the export step's
check all label texts here.

The folder (``SERVING``, beside a version's ``model/``) holds::

    model.onnx        input_ids, attention_mask (int64, [batch, sequence]) -> probabilities
                      (float32, [batch, labels]); the whole classifier: encoder(s), pooling, head
    model.int8.onnx   the same with dynamic int8 weights (faster; used only when the gate accepted it)
    tokenizer.json    the ``tokenizers`` definition, truncation and padding set as the model was trained
    labels.json       {"labels": [...], "max_length", "inputs", "output", "opset"}
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from jobs.contract.outputs import SERVING
from jobs.data import DataError, read_examples

__all__ = ["GRAPH", "INT8", "LABELS", "SERVING", "TOKENIZER", "OnnxClassifier", "has_graph", "predict", "read_texts",
           "rows_of", "write_predictions"]
GRAPH = "model.onnx"
INT8 = "model.int8.onnx"
TOKENIZER = "tokenizer.json"
LABELS = "labels.json"
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "probabilities"
BATCH = 64
"""Texts per run of the fp32 graph, longest first (each batch padded to its longest text)."""
INT8_BATCH = 1
"""The int8 graph runs one text at a time: its dynamic quantization scales activations over the
whole input, so a text's probabilities would depend on the texts batched (and padded) with it.
Alone, each text gets the probabilities the gate judged."""


def graph_name(int8: bool) -> str:
    return INT8 if int8 else GRAPH


def has_graph(folder: Path, int8: bool = False) -> bool:
    return (folder / graph_name(int8)).is_file() and (folder / LABELS).is_file() and (folder / TOKENIZER).is_file()


def _threads() -> int:
    """``CTUNE_THREADS`` when set (as the torch path), else onnxruntime's own choice (0)."""
    value = os.environ.get("CTUNE_THREADS", "")
    return max(1, int(value)) if value.strip().isdigit() else 0


@dataclass
class OnnxClassifier:
    session: object
    tokenizer: object
    labels: list[str]
    pad_id: int
    batch: int = BATCH

    @classmethod
    def load(cls, folder: Path, int8: bool = False) -> OnnxClassifier:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        if not has_graph(folder, int8):
            raise DataError(f"{folder}: no ONNX classifier ({graph_name(int8)}, {LABELS} and {TOKENIZER})")
        meta = json.loads((folder / LABELS).read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        padding = tokenizer.padding or {}
        tokenizer.no_padding()  # each batch is padded to its own longest text below
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(folder / graph_name(int8)), options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer, [str(x) for x in meta["labels"]], int(padding.get("pad_id", 0)),
                   INT8_BATCH if int8 else BATCH)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in input order."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(list(texts))  # type: ignore[attr-defined]
        lengths = np.array([len(e.ids) for e in encoded])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for i in range(0, len(order), self.batch):
            rows = order[i:i + self.batch]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, row in enumerate(rows):
                n = int(lengths[row])
                ids[r, :n] = encoded[row].ids
                mask[r, :n] = 1
            out[rows] = self.session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0]  # type: ignore[attr-defined]
        return out


def rows_of(texts: Sequence[str], probs: np.ndarray, labels: Sequence[str]) -> list[dict]:
    """``ctune predict``'s rows: the label, its probability, and every label's."""
    return [{"text": t, "label": labels[int(p.argmax())], "score": float(p.max()),
             "scores": {n: float(v) for n, v in zip(labels, p)}} for t, p in zip(texts, probs)]


def predict(folder: Path, texts: Sequence[str], int8: bool = False) -> list[dict]:
    model = OnnxClassifier.load(folder, int8)
    return rows_of(texts, model.probabilities(texts), model.labels)


def read_texts(path: Path, text_field: str) -> list[str]:
    """Texts from .jsonl/.csv (a text field) or .txt (one text per line)."""
    if path.suffix == ".txt":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise DataError(f"{path}: file is empty")
        return texts
    return list(read_examples(path, text_field, None).texts)


def write_predictions(rows: list[dict], fmt: str, out: IO[str]) -> None:
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    names = list(rows[0]["scores"]) if rows else []
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "score", *[f"score_{n}" for n in names]])
    for r in rows:
        writer.writerow([r["text"], r["label"], f"{r['score']:.6f}", *[f"{r['scores'][n]:.6f}" for n in names]])
