"""Masked-LM inter-training: BERT masking statistics and the head created when missing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jobs.contract.params import MlmOptimization
from jobs.lib.models import load_tokenizer
from jobs.objectives.mlm import load_mlm, mask_tokens, train_mlm

pytestmark = pytest.mark.unit


def test_bert_masking_statistics():
    rng = np.random.default_rng(0)
    n = 20000
    ids = list(rng.integers(1000, 2000, size=n))
    special = [i in (0, n - 1) for i in range(n)]
    inputs, labels = mask_tokens(ids, special, rng, mask_id=103, vocab_size=30522)
    chosen = np.array(labels) != -100
    assert not chosen[0] and not chosen[-1]  # special tokens are never masked
    assert abs(chosen.mean() - 0.15) < 0.01
    assert np.array_equal(np.array(labels)[chosen], np.array(ids)[chosen])
    inputs, ids = np.array(inputs), np.array(ids)
    masked = (inputs[chosen] == 103).mean()
    kept = (inputs[chosen] == ids[chosen]).mean()
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    assert np.array_equal(inputs[~chosen], ids[~chosen])


def test_a_short_text_still_gets_one_masked_token():
    rng = np.random.default_rng(1)
    _, labels = mask_tokens([101, 2000, 102], [True, False, True], rng, 103, 30522, mask_prob=0.0001)
    assert labels == [-100, 2000, -100]


def test_mlm_head_is_created_and_training_lowers_the_loss(tiny_model):
    tok = load_tokenizer(tiny_model)
    model = load_mlm(tiny_model, seed=0)  # the tiny checkpoint is a BertModel: no MLM head
    texts = ["the market rallied on strong earnings", "the team won the final match"] * 8
    options = MlmOptimization(lr=1e-3, batch_size=8, max_length=16, replication=2, mask_prob=0.15)
    first = train_mlm(model, tok, texts, dataclasses.replace(options, epochs=1), seed=0)
    later = train_mlm(model, tok, texts, dataclasses.replace(options, epochs=6), seed=0)
    assert first["optimizer_steps"] == 2 and later["optimizer_steps"] == 12
    assert later["final_loss"] < first["final_loss"]
