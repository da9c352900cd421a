"""Masked-LM inter-training on the unlabeled train texts (the paper's BERT_IT:MLM).

BERT masking: 15% of the tokens; of those 80% become [MASK], 10% a random token, 10%
stay.  Each text is masked ``replication`` different ways (static masks, as BERT's
``dupe_factor``); epoch ``e`` uses mask ``e mod replication``.  The paper: 30 epochs,
replication 5.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from jobs.contract.errors import JobError
from jobs.contract.params import IntertrainParams, MlmOptimization
from jobs.lib import models
from jobs.lib.runner import StepContext

log = logging.getLogger(__name__)


def mask_tokens(token_ids: Sequence[int], special: Sequence[bool], rng: np.random.Generator, mask_id: int,
                vocab_size: int, mask_prob: float = 0.15) -> tuple[list[int], list[int]]:
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
    models.seed_everything(seed)
    return models.load_pretrained(AutoModelForMaskedLM.from_pretrained, name)


def train_mlm(model, tokenizer, texts: Sequence[str], options: MlmOptimization, seed: int, progress=None,
              group_by_length: bool = False) -> dict:
    args = models.TrainArgs(options, group_by_length)
    enc = tokenizer(list(texts), truncation=True, max_length=args.max_length, return_special_tokens_mask=True)
    rng = np.random.default_rng([seed, 1])
    replication = options.replication
    masks = [[mask_tokens(ids, sp, rng, tokenizer.mask_token_id, len(tokenizer), options.mask_prob)
              for ids, sp in zip(enc["input_ids"], enc["special_tokens_mask"])] for _ in range(replication)]
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    pad = tokenizer.pad_token_id

    def batch(idx, epoch):
        version = masks[epoch % replication]
        width = int(lengths[idx].max())
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            inp, lab = version[i]
            ids[row, :len(inp)] = torch.tensor(inp)
            labels[row, :len(lab)] = torch.tensor(lab)
            attention[row, :len(inp)] = 1
        return {"input_ids": ids, "attention_mask": attention, "labels": labels}

    return models.run_epochs(model, len(texts), args, seed, lengths if group_by_length else None, batch, progress)


def train(ctx: StepContext[IntertrainParams], texts: Sequence[str], source: str,
          progress: Callable[[int, float], None]) -> tuple[object, object, dict]:
    options = ctx.params.options
    if not isinstance(options, MlmOptimization):
        raise JobError(f"masked-LM inter-training needs masked-LM options, not {type(options).__name__}")
    tokenizer = models.load_tokenizer(source)
    model = load_mlm(source, ctx.params.seed)
    t0 = time.time()
    stats = train_mlm(model, tokenizer, texts, options, ctx.params.seed, progress, group_by_length=True)
    stats["train_s"] = round(time.time() - t0, 3)
    return model, tokenizer, stats
