"""The SetFit body: an inter-trained encoder gets the base model's sentence modules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.kinds.setfit import body_folder
from jobs.lib.models import load_encoder, load_tokenizer, resolve_model, save_encoder

pytestmark = pytest.mark.unit


def test_a_plain_base_or_the_base_itself_is_used_as_it_is(tmp_path, tiny_model):
    assert body_folder(tiny_model, tiny_model, tmp_path) == tiny_model
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    assert body_folder(str(encoder), tiny_model, tmp_path) == str(encoder)  # base has no modules.json


def test_an_inter_trained_copy_of_minilm_embeds_as_minilm(tmp_path):
    from sentence_transformers import SentenceTransformer

    base = resolve_model("minilm")
    encoder = tmp_path / "inter-trained"
    save_encoder(load_encoder(base), load_tokenizer(base), encoder)  # unchanged weights, plain folder
    assert not (encoder / "modules.json").exists()
    body = body_folder(str(encoder), base, tmp_path / "scratch")
    modules = json.loads((tmp_path / "scratch/body/modules.json").read_text())
    assert body == str(tmp_path / "scratch/body") and [m["type"].rsplit(".", 1)[-1] for m in modules] == [
        "Transformer", "Pooling", "Normalize"]
    texts = ["Stocks fell sharply on Monday.", "The team won the cup after extra time."]
    ours = SentenceTransformer(body, device="cpu").encode(texts)
    theirs = SentenceTransformer(base, device="cpu").encode(texts)
    assert np.allclose(ours, theirs, atol=1e-5) and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
