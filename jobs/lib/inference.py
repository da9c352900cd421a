"""Running an encoder over many texts: logits, mean-pooled and [CLS] embeddings.

Texts go longest first, in large batches (512 on a GPU, 128 on CPU), each padded to its
longest text (or, on a GPU, to one of a few fixed lengths); under ``inference_mode`` and,
on a GPU, bf16 autocast, with the results kept on the device until the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from jobs.lib.models import Accelerator, accelerator, check_max_length
from jobs.lib.tokens import Tokens, tokenize
from jobs.lib.training import DeviceTokens, batch_width

Progress = Callable[[int, int], None]

Head = Callable[[object, dict[str, torch.Tensor]], torch.Tensor]


@torch.inference_mode()
def apply(model, tokens: Tokens, head: Head, max_length: int, acc: Accelerator | None = None,
          progress: Progress | None = None) -> np.ndarray:
    """``head(model, inputs)`` for every text, rows in input order; ``progress(texts done,
    of total)`` after each batch."""
    acc = acc or accelerator()
    check_max_length(model, max_length)
    model.to(acc.device).eval()
    if len(tokens) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    data = DeviceTokens(tokens, acc)
    order = np.argsort(-tokens.lengths, kind="stable")
    parts = []
    for i in range(0, len(order), acc.eval_batch):
        idx = order[i:i + acc.eval_batch]
        width = batch_width(int(tokens.lengths[idx].max()), max_length, acc)
        with acc.autocast():
            parts.append(head(model, data.batch(idx, width)).float())
        if progress:
            progress(i + len(idx), len(order))
    rows = torch.cat(parts).cpu().numpy()
    out = np.empty_like(rows)
    out[order] = rows
    return out


def _logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs).logits


def _mean_pool(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _cls(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs).last_hidden_state[:, 0]


def predict_logits(model, tokens: Tokens, max_length: int, progress: Progress | None = None) -> np.ndarray:
    return apply(model, tokens, _logits, max_length, progress=progress)


def embed_mean(model, tokens: Tokens, max_length: int, progress: Progress | None = None) -> np.ndarray:
    """Mean-pooled last-layer embeddings (the encoder's own, no head)."""
    return apply(model, tokens, _mean_pool, max_length, progress=progress)


def embed_cls(model, tokens: Tokens, max_length: int) -> np.ndarray:
    """Last-layer [CLS] embeddings (what a fine-tuned BERT classifier's head reads)."""
    return apply(model, tokens, _cls, max_length)


def predict_texts(model, tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Logits of texts not in the store (``ctune predict``)."""
    return predict_logits(model, tokenize(tokenizer, texts, max_length), max_length)
