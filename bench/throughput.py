"""Training and evaluation throughput: this project's loops against what a user gets from
``transformers`` untuned, on the same texts, model and device, in one run.

* training (one epoch, batch 64, length 128, a 50-way head as inter-training has):
  ours (the device's batching: on CPU texts of similar lengths batched, on a GPU bucketed
  shapes on the device) against ``Trainer`` with its defaults and the texts padded to 128,
  and against ``Trainer`` with ``DataCollatorWithPadding``;
* evaluation: ours (sorted, large batches) against ``pipeline("text-classification")`` and a
  plain loop padding every batch to 128.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jobs.contract.params import Optimization
from jobs.lib import models
from jobs.lib.inference import predict_logits
from jobs.lib.tokens import tokenize
from jobs.lib.training import train_classifier

LENGTH = 128
BATCH = 64


@dataclass(frozen=True)
class Rate:
    what: str
    texts_per_s: float


def timed(fn: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _trainer(model, tokenizer, texts: Sequence[str], labels: Sequence[int], dynamic: bool):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    padding = "longest" if dynamic else "max_length"
    enc = tokenizer(list(texts), truncation=True, max_length=LENGTH, padding=False if dynamic else padding)
    rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": int(labels[i])}
            for i in range(len(texts))]
    out = tempfile.mkdtemp(prefix="ctune-bench-trainer-")
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                             bf16=torch.cuda.is_available(), dataloader_num_workers=0)
    collator = DataCollatorWithPadding(tokenizer) if dynamic else None
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # its closing line of metrics
    return trainer


def training(texts: Sequence[str], labels: Sequence[int], model_name: str) -> list[Rate]:
    """Texts/s of one training epoch, each contender on a fresh copy of the same model."""
    tokenizer = models.load_tokenizer(model_name)
    n_labels = int(max(labels)) + 1
    opt = Optimization(epochs=1, batch_size=BATCH, max_length=LENGTH)
    rates = []
    model = models.load_classifier(model_name, n_labels, seed=0)
    seconds = timed(lambda: train_classifier(model, tokenize(tokenizer, texts, LENGTH), labels, opt, seed=0,
                                             group_by_length=not torch.cuda.is_available()))
    rates.append(Rate("ours", len(texts) / seconds))
    for dynamic, what in ((False, "Trainer, defaults, padded to 128"), (True, "Trainer + DataCollatorWithPadding")):
        trainer = _trainer(models.load_classifier(model_name, n_labels, seed=0), tokenizer, texts, labels, dynamic)
        rates.append(Rate(what, len(texts) / timed(trainer.train)))
    return rates


def evaluation(texts: Sequence[str], model_name: str) -> list[Rate]:
    """Texts/s from raw texts to logits (tokenizing included for everyone)."""
    from transformers import pipeline

    tokenizer = models.load_tokenizer(model_name)
    model = models.load_classifier(model_name, 4, seed=0)
    dev = models.device()
    model.to(dev).eval()
    rates = [Rate("ours", len(texts) / timed(lambda: predict_logits(model, tokenize(tokenizer, texts, LENGTH),
                                                                     LENGTH)))]
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=dev)
    rates.append(Rate("pipeline(text-classification)",
                      len(texts) / timed(lambda: classify(list(texts), batch_size=BATCH, truncation=True))))

    @torch.inference_mode()
    def padded_loop() -> None:
        for i in range(0, len(texts), BATCH):
            enc = tokenizer(list(texts[i:i + BATCH]), truncation=True, max_length=LENGTH, padding="max_length",
                            return_tensors="pt").to(dev)
            model(**enc).logits.float().cpu()

    rates.append(Rate("plain loop, padded to 128", len(texts) / timed(padded_loop)))
    return rates


def report(title: str, rates: list[Rate]) -> str:
    ours = rates[0].texts_per_s
    lines = [f"{title}:"] + [f"  {r.what:<40} {r.texts_per_s:9.1f} texts/s" + ("" if r.what == "ours" else
                                                                               f"   ours/this {ours / r.texts_per_s:5.2f}x")
                             for r in rates]
    return "\n".join(lines)


def sample_texts(texts: Sequence[str], n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(texts))[:n]
    return [texts[i] for i in idx], [int(i) % 50 for i in idx]
