"""The training loop every step shares, and how batches reach the device.

Batches are cut from token ids made once (``jobs.lib.tokens``), never by tokenizing again.
What is fastest differs by device, so the :class:`~jobs.lib.models.Accelerator` decides (the
device's own choices unless ``CTUNE_ACCELERATOR`` asks for another's):

* **CPU**: batches padded to their longest text (and, for long corpora, texts of similar
  lengths batched together): padding is what costs on 2 cores;
* **CUDA**: the whole split moved to the GPU once (pinned, non-blocking), each batch padded to
  one of a few fixed lengths (so kernels see few shapes), bf16 autocast, fused Adam, TF32, and
  no host synchronisation per step (losses stay on the GPU; progress, throttled in
  ``jobs.contract.progress``, reads one only when it writes a line).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from jobs.contract.params import Optimization
from jobs.lib.models import Accelerator, accelerator, check_max_length, seed_everything
from jobs.lib.tokens import Tokens

BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)

Progress = Callable[[int, int, Callable[[], float]], None]
"""``progress(optimizer steps done, of total, loss)``: the loss is read only when called."""
BatchFn = Callable[[np.ndarray, int], dict[str, torch.Tensor]]


def batch_width(longest: int, max_length: int, acc: Accelerator) -> int:
    """How far a batch whose longest text has ``longest`` tokens is padded."""
    if not acc.static_shapes:
        return int(longest)
    return min(next((b for b in BUCKETS if b >= longest), max_length), max_length)


def batch_indices(n: int, batch_size: int, rng: np.random.Generator, lengths: np.ndarray | None) -> Iterator[np.ndarray]:
    """One epoch's batches: a seeded shuffle; with ``lengths``, similar lengths grouped (by
    sorting chunks of 32 batches) and the batches shuffled again."""
    order = rng.permutation(n)
    if lengths is None:
        yield from (order[i:i + batch_size] for i in range(0, n, batch_size))
        return
    mega = batch_size * 32
    batches: list[np.ndarray] = []
    for i in range(0, n, mega):
        chunk = order[i:i + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    for b in rng.permutation(len(batches)):
        yield batches[b]


class DeviceTokens:
    """Token ids (and targets) where the model runs; batches are cut there by row index."""

    def __init__(self, tokens: Tokens, acc: Accelerator, targets: np.ndarray | None = None):
        self.acc = acc
        self.lengths = tokens.lengths
        self.ids = acc.to_device(torch.from_numpy(tokens.ids.astype(np.int64)))
        self.device_lengths = acc.to_device(torch.from_numpy(tokens.lengths.astype(np.int64)))
        self.targets = None if targets is None else acc.to_device(torch.from_numpy(np.asarray(targets)))
        self.positions = acc.to_device(torch.arange(tokens.ids.shape[1]))

    def rows(self, idx: np.ndarray) -> torch.Tensor:
        return self.acc.to_device(torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)))

    def inputs(self, rows: torch.Tensor, width: int) -> dict[str, torch.Tensor]:
        ids = self.ids.index_select(0, rows)[:, :width].contiguous()
        mask = (self.positions[:width].unsqueeze(0) < self.device_lengths.index_select(0, rows).unsqueeze(1)).long()
        return {"input_ids": ids, "attention_mask": mask}

    def batch(self, idx: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        rows = self.rows(idx)
        out = self.inputs(rows, width)
        if self.targets is not None:
            labels = self.targets.index_select(0, rows)
            out["labels"] = labels[:, :width].contiguous() if labels.dim() == 2 else labels  # per-token (MLM)
        return out


def _optimizer(model, opt: Optimization, acc: Accelerator) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=opt.lr, eps=1e-6, fused=acc.fused_adam or None)


def total_batches(n: int, opt: Optimization) -> int:
    """How many batches ``_epochs`` yields."""
    per_epoch = -(-n // opt.batch_size)
    full, frac = int(opt.epochs), opt.epochs - int(opt.epochs)
    return per_epoch * full + (max(1, round(per_epoch * frac)) if frac > 0 else 0)


def _epochs(n: int, opt: Optimization, rng: np.random.Generator, lengths: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    """(epoch, batch indices) over ``opt.epochs`` passes; a fractional last pass allowed."""
    full, frac = int(opt.epochs), opt.epochs - int(opt.epochs)
    for epoch in range(full + (1 if frac > 0 else 0)):
        batches = list(batch_indices(n, opt.batch_size, rng, lengths))
        if epoch == full:  # a fractional last epoch
            batches = batches[: max(1, round(len(batches) * frac))]
        for idx in batches:
            yield epoch, idx


def run_epochs(model, n: int, opt: Optimization, seed: int, batch: BatchFn, lengths: np.ndarray | None = None,
               progress: Progress | None = None, acc: Accelerator | None = None) -> dict:
    """Adam, constant learning rate, ``opt.epochs`` passes over ``n`` examples;
    ``batch(indices, epoch)`` returns the model's inputs (with ``labels``), on the device."""
    acc = acc or accelerator()
    check_max_length(model, opt.max_length)
    seed_everything(seed)
    model.to(acc.device).train()
    optimizer = _optimizer(model, opt, acc)
    recent: collections.deque = collections.deque(maxlen=10)
    steps, total = 0, total_batches(n, opt)
    for epoch, idx in _epochs(n, opt, np.random.default_rng(seed), lengths):
        with acc.autocast():
            loss = model(**batch(idx, epoch)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
        recent.append(loss.detach())
        if progress:
            progress(steps, total, functools.partial(float, recent[-1]))
    model.eval()
    final = float(torch.stack(list(recent)).double().mean()) if recent else None
    return {"optimizer_steps": steps, "final_loss": final}


def train_classifier(model, tokens: Tokens, labels: Sequence[int], opt: Optimization, seed: int,
                     group_by_length: bool = False, progress: Progress | None = None) -> dict:
    """Supervised training, as the reference: Adam, constant lr, the last epoch kept."""
    acc = accelerator()
    data = DeviceTokens(tokens, acc, np.asarray(labels, dtype=np.int64))

    def batch(idx: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        return data.batch(idx, batch_width(int(tokens.lengths[idx].max()), opt.max_length, acc))

    return run_epochs(model, len(tokens), opt, seed, batch, tokens.lengths if group_by_length else None,
                      progress, acc)
