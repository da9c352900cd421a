"""A trained classifier as one ONNX graph (jobs.lib.onnx_export), run with onnxruntime and
tokenizers alone (jobs.serving): the concatenated probe of ``ctune train``'s default setting and a
fine-tuned classifier, each against the torch path on real texts; the export step's check; and
the graph loaded in a virtual environment holding only onnxruntime and tokenizers, with the
model card's own code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobs.contract.errors import JobError
from tests.conftest import shared_data

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
ONNX_ONLY = REPO / ".venv" / "onnx-only" / "bin" / "python"
"""make test builds it: a virtual environment with onnxruntime and tokenizers (and what they need) only."""


def texts(n: int = 120) -> list[str]:
    rows = (shared_data() / "ag_news" / "dev.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    # real texts, long ones truncated at 128 tokens, and a few short or odd ones
    return [json.loads(r)["text"] for r in rows] + ["", "ok", "a" * 2000, "¿Qué? 東京 🙂"]


def _probs(rows: list[dict], names: list[str]) -> np.ndarray:
    return np.array([[r["scores"][n] for n in names] for r in rows])


@pytest.fixture(scope="module")
def concat_model(tiny_model, tmp_path_factory) -> Path:
    """The shape of clust+concat(+self)'s model folder: an encoder, the pretrained one in base/,
    and a logistic regression on both encoders' mean-pooled embeddings."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from jobs.lib.probe_head import write_head

    folder = tmp_path_factory.mktemp("concat")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(1)
    inter = BertModel.from_pretrained(tiny_model)
    with torch.no_grad():
        for p in inter.parameters():
            p.add_(0.05 * torch.randn_like(p))  # an "inter-trained" encoder unlike the pretrained one
    inter.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    BertModel.from_pretrained(tiny_model).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    rng = np.random.default_rng(0)
    names = ["World", "Sports", "Business", "Sci/Tech"]
    write_head({"pooling": "mean", "max_length": 128, "labels": names, "weight": (rng.normal(size=(4, 64)) * 4).tolist(),
                "bias": rng.normal(size=4).tolist(), "C": 1.0, "beside": "base"}, folder)
    return folder


@pytest.fixture(scope="module")
def finetuned_model(tiny_model, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("finetuned")
    config = BertConfig.from_pretrained(tiny_model, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"},
                                        label2id={"neg": 0, "neu": 1, "pos": 2})
    torch.manual_seed(2)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


def exported(model: Path, out: Path) -> Path:
    from jobs.lib.onnx_export import export, quantize

    export(model, out)
    quantize(out)
    return out


@pytest.fixture(scope="module")
def concat_onnx(concat_model, tmp_path_factory) -> Path:
    return exported(concat_model, tmp_path_factory.mktemp("concat-onnx"))


@pytest.mark.parametrize("which", ["concat", "finetuned"])
def test_the_graph_gives_the_torch_paths_labels_and_probabilities(which, concat_model, concat_onnx, finetuned_model,
                                                                    tmp_path):
    import onnx

    from jobs.lib.predict import predict as torch_predict
    from jobs.serving import GRAPH, INT8, LABELS, TOKENIZER, OnnxClassifier

    model = concat_model if which == "concat" else finetuned_model
    out = concat_onnx if which == "concat" else exported(finetuned_model, tmp_path / "onnx")
    sample = texts()
    reference = torch_predict(model, sample)
    names = list(reference[0]["scores"])
    loaded = OnnxClassifier.load(out)
    assert loaded.labels == names == json.loads((out / LABELS).read_text())["labels"]
    got = loaded.probabilities(sample)
    want = _probs(reference, names)
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    # one graph, in one file, as Triton's ONNX backend and onnxruntime take it
    graph = onnx.load(str(out / GRAPH))
    onnx.checker.check_model(graph)
    assert graph.ir_version == 8 and {o.domain: o.version for o in graph.opset_import}[""] == 18
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input]
    assert dims == [["batch", "sequence"]] * 2
    assert sorted(p.name for p in out.iterdir()) == sorted([GRAPH, INT8, LABELS, TOKENIZER])
    # one text at a time (batch 1, its own length) gives the same as in batches
    single = np.vstack([loaded.probabilities([t]) for t in sample[:5]])
    assert np.abs(single - got[:5]).max() <= 1e-5
    # the int8 graph runs and labels every text (how well is the gate's question, not this test's)
    int8 = OnnxClassifier.load(out, int8=True).probabilities(sample)
    assert int8.shape == got.shape and np.allclose(int8.sum(1), 1, atol=1e-4)


def test_the_export_steps_check_refuses_a_graph_that_says_other_things():
    from jobs.contract.params import ExportParams
    from jobs.kinds.export import check

    torch_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]] * 400)
    params = ExportParams()
    assert check(torch_probs, torch_probs + 5e-5, params) == {"agreement": 1.0, "max_difference": pytest.approx(5e-5)}
    flipped = torch_probs.copy()
    flipped[0] = [0.4, 0.6]  # one label of 1,200 differs: 99.92% still passes 99.9% ...
    with pytest.raises(JobError, match="largest probability difference"):
        check(torch_probs, flipped, params)  # ... but not the probability bound
    many = torch_probs.copy()
    many[:2] = many[:2, ::-1]
    with pytest.raises(JobError, match=r"labels equal on 99\.83% of 1200 texts"):
        check(torch_probs, many, ExportParams(max_difference=0.9))


def card_code() -> str:
    from controller.models.card import LOADING_ONNX

    return LOADING_ONNX.split("```python\n", 1)[1].rsplit("```", 1)[0]


def test_the_folder_loads_with_onnxruntime_and_tokenizers_alone_as_the_card_shows(concat_model, concat_onnx,
                                                                                  tmp_path):
    """A fresh virtual environment (make test builds it from the lock) with onnxruntime and
    tokenizers only: the card's code labels the dev texts as the torch path does."""
    from jobs.lib.predict import predict as torch_predict

    if not ONNX_ONLY.is_file():
        pytest.fail(f"{ONNX_ONLY} is missing: `make test` builds it (make .venv/onnx-only/.installed)")
    version = tmp_path / "version"
    version.mkdir()
    (version / "onnx").symlink_to(concat_onnx)
    sample = texts()
    (version / "texts.json").write_text(json.dumps(sample))
    code = card_code().replace('texts = ["a text to label", "another one"]', 'texts = json.load(open("texts.json"))')
    assert "texts.json" in code
    probe = ("import importlib.util as u, json; "
             "print(json.dumps([m for m in ('torch', 'transformers', 'controller', 'jobs') if u.find_spec(m)]))")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    found = subprocess.run([str(ONNX_ONLY), "-I", "-c", probe], capture_output=True, text=True, cwd=version, env=env)
    assert found.returncode == 0 and json.loads(found.stdout) == [], found.stderr + found.stdout
    ran = subprocess.run([str(ONNX_ONLY), "-I", "-c", code + "\nprint(json.dumps(predicted))"], capture_output=True,
                         text=True, cwd=version, env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[-1]) == [r["label"] for r in torch_predict(concat_model, sample)]


def test_a_finetuned_folder_is_a_transformers_text_classification_pipeline(finetuned_model):
    from transformers import pipeline

    from jobs.lib.predict import predict as torch_predict

    sample = texts(20)
    classify = pipeline("text-classification", model=str(finetuned_model), truncation=True, max_length=128)
    assert [r["label"] for r in classify(sample)] == [r["label"] for r in torch_predict(finetuned_model, sample)]


def test_the_card_says_truthfully_what_loads_each_folder():
    import yaml

    from controller.models.card import render_card

    graphs = {"opset": 18, "agreement": 1.0, "max_difference": 3e-7, "texts": 200,
              "int8": {"accepted": False, "gate": {"outcome": "inconclusive"}}}
    base = {"version": "v1", "labels": ["a", "b"], "setting": "clust+concat+self", "steps": {}}

    def front(record: dict) -> dict:
        return yaml.safe_load(render_card(record).split("---\n")[1])

    probe = front({**base, "probe": True, "onnx": graphs})
    assert probe["library_name"] == "onnx" and probe["pipeline_tag"] == "text-classification" and "onnx" in probe["tags"]
    finetuned = front({**base, "probe": False, "onnx": graphs})
    assert finetuned["library_name"] == "transformers" and finetuned["pipeline_tag"] == "text-classification"
    old_probe = front({**base, "probe": True})  # before graphs were exported: no text-classification pipeline
    assert "pipeline_tag" not in old_probe and "onnx" not in old_probe["tags"]
    card = render_card({**base, "probe": True, "onnx": graphs})
    assert "onnxruntime" in card and "not accepted by the gate (inconclusive)" in card and "not a `pipeline` model" in card
    assert "pipeline(\"text-classification\"" in render_card({**base, "probe": False, "onnx": graphs})
