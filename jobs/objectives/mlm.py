"""Masked-LM inter-training on the unlabeled train texts (the paper's BERT_IT:MLM).

BERT masking: 15% of the tokens; of those 80% become [MASK], 10% a random token, 10%
stay.  Each text is masked ``replication`` different ways (static masks, as BERT's
``dupe_factor``); epoch ``e`` uses mask ``e mod replication``.  The paper: 30 epochs,
replication 5.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from jobs.contract.errors import JobError
from jobs.contract.params import IntertrainParams, MlmOptimization
from jobs.lib import models
from jobs.lib.models import Accelerator, accelerator
from jobs.lib.runner import StepContext
from jobs.lib.tokens import Tokens
from jobs.lib.training import BatchFn, DeviceTokens, Progress, batch_width, run_epochs

log = logging.getLogger(__name__)


def mask_tokens(token_ids: Sequence[int] | np.ndarray, special: Sequence[bool] | np.ndarray, rng: np.random.Generator,
                mask_id: int, vocab_size: int, mask_prob: float = 0.15) -> tuple[list[int], list[int]]:
    """Return (input ids, labels) for one text; labels are -100 where nothing is predicted."""
    ids = np.asarray(token_ids)
    candidates = ~np.asarray(special, dtype=bool)
    chosen = candidates & (rng.random(len(ids)) < mask_prob)
    if candidates.any() and not chosen.any():  # every text teaches something
        chosen[rng.choice(np.flatnonzero(candidates))] = True
    labels = np.where(chosen, ids, -100)
    roll = rng.random(len(ids))
    inputs = ids.copy()
    inputs[chosen & (roll < 0.8)] = mask_id
    random_pos = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_pos] = rng.integers(0, vocab_size, size=int(random_pos.sum()))
    return inputs.tolist(), labels.tolist()


def load_mlm(name: str, seed: int):
    """A masked-LM model; its head is created (and tied to the embeddings) when the checkpoint has none."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    models.seed_everything(seed)
    return models.load_pretrained(AutoModelForMaskedLM.from_pretrained, name)


def masked_versions(tokens: Tokens, special: np.ndarray, mask_id: int, vocab_size: int,
                    options: MlmOptimization, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels [replication, n, max_length] of every static mask of every text;
    ``special``: the tokens the tokenizer added ([CLS], [SEP]), never masked."""
    rng = np.random.default_rng([seed, 1])
    reps, (n, width) = options.replication, tokens.ids.shape
    inputs = np.full((reps, n, width), tokens.pad_id, dtype=np.int64)
    labels = np.full((reps, n, width), -100, dtype=np.int64)
    for r in range(reps):
        for i in range(n):
            length = int(tokens.lengths[i])
            inp, lab = mask_tokens(tokens.ids[i, :length], special[i, :length], rng, mask_id, vocab_size,
                                   options.mask_prob)
            inputs[r, i, :length], labels[r, i, :length] = inp, lab
    return inputs, labels


def mlm_batches(tokenizer, texts: Sequence[str], options: MlmOptimization, seed: int,
                acc: Accelerator) -> tuple[np.ndarray, BatchFn]:
    """The texts' lengths, and ``batch(indices, epoch)``: epoch e reads mask version
    e mod replication, its inputs and per-token labels cut to the same width."""
    enc = tokenizer(list(texts), truncation=True, max_length=options.max_length, padding="max_length",
                    return_special_tokens_mask=True, return_tensors="np")
    tokens = Tokens(np.asarray(enc["input_ids"], dtype=np.int32),
                    np.asarray(enc["attention_mask"]).sum(axis=1).astype(np.int32), int(tokenizer.pad_token_id))
    inputs, labels = masked_versions(tokens, np.asarray(enc["special_tokens_mask"], dtype=bool),
                                     tokenizer.mask_token_id, len(tokenizer), options, seed)
    versions = [(DeviceTokens(Tokens(inputs[r], tokens.lengths, tokens.pad_id), acc, labels[r]))
                for r in range(options.replication)]
    reps = options.replication

    def batch(idx: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        width = batch_width(int(tokens.lengths[idx].max()), options.max_length, acc)
        return versions[epoch % reps].batch(idx, width)

    return tokens.lengths, batch


def train_mlm(model, tokenizer, texts: Sequence[str], options: MlmOptimization, seed: int, progress=None,
              group_by_length: bool = False) -> dict:
    acc = accelerator()
    lengths, batch = mlm_batches(tokenizer, texts, options, seed, acc)
    return run_epochs(model, len(lengths), options, seed, batch, lengths if group_by_length else None,
                      progress, acc)


def train(ctx: StepContext[IntertrainParams], texts: Sequence[str], source: str,
          progress: Progress) -> tuple[object, object, dict]:
    options = ctx.params.options
    if not isinstance(options, MlmOptimization):
        raise JobError(f"masked-LM inter-training needs masked-LM options, not {type(options).__name__}")
    tokenizer = models.load_tokenizer(source)
    model = load_mlm(source, ctx.params.seed)
    t0 = time.time()
    stats = train_mlm(model, tokenizer, texts, options, ctx.params.seed, progress, group_by_length=True)
    stats["train_s"] = round(time.time() - t0, 3)
    return model, tokenizer, stats
