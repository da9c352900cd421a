"""The GPU's choices, run on CPU: bucketed static shapes, 512-text evaluation batches, fused
Adam and bf16 autocast switch on with ``CTUNE_ACCELERATOR=gpu`` on any device, so every
``make test`` runs the branches a GPU node takes.

Tolerances. In fp32 the static path differs from the dynamic one only by padding: padded
keys get zero attention weight and padded tokens are left out of every pooled sum, so only
the order of floating-point sums changes (matmuls of other shapes). Over a dozen Adam steps
that stays near fp32's rounding: 4.5e-8 on these logits, 6e-8 on the inter-trained weights,
1e-7 on the masked-LM loss (measured here). 1e-5 leaves two orders of headroom for other CPUs'
kernels (Adam with eps 1e-6 can scale a gradient's rounding by up to lr/eps); a width one token
short moved the same figures 4.6e-5, 2.4e-2 and 4.5e-4, and the tests also count the real
tokens each path fed the model, which any cut changes.
The tiny model here has no dropout: dropout draws one mask per padded position, so with it the
two paths draw different random streams (equally valid, never equal). bf16 keeps 8 bits of
mantissa (about 0.4% a rounding); its logits are held to 1e-2 of fp32's (5.4e-4 measured).
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from jobs.contract.errors import JobError
from jobs.contract.params import MlmOptimization, Optimization
from jobs.contract.staging import TEST, TRAIN, stage, staged_dataset
from jobs.contract.steps import STEP_FILE
from jobs.data import Examples
from jobs.kinds import finetune
from jobs.lib.inference import predict_logits
from jobs.lib.models import ACCELERATOR_ENV, Accelerator, accelerator, load_classifier, load_tokenizer
from jobs.lib.runner import run_step
from jobs.lib.tokens import tokenize
from jobs.lib.training import BUCKETS, batch_width, train_classifier
from jobs.objectives.mlm import load_mlm, mlm_batches, train_mlm
from jobs.storage import open_store
from tests.conftest import shared_data

pytestmark = pytest.mark.unit

FP32_TOLERANCE = 1e-5
BF16_TOLERANCE = 1e-2
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def still_model(tmp_path_factory) -> str:
    """The tiny random BERT of ``conftest.tiny_model``, without dropout (see the module's doc)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from jobs.lib.models import resolve_model

    folder = tmp_path_factory.mktemp("still-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


EDGES = (17, 33, 49)
"""Lengths one token past a bucket (16, 32, 48): a width that cuts the last token of such a
text shows in the results, so the texts below sit on them."""


def _texts_of_length(source: list[dict], lengths, tokenizer) -> Examples:
    """Prefixes of AG News texts (the labels kept) that tokenize to exactly ``lengths``."""
    texts, labels, rows = [], [], iter(source * 2)
    for length in lengths:
        for row in rows:
            pieces = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
            prefix = tokenizer.decode(pieces[:length - 2])
            if len(pieces) >= length - 2 and len(tokenizer(prefix)["input_ids"]) == length:
                texts.append(prefix)
                labels.append(row["label"])
                break
    assert len(texts) == len(lengths), "too few AG News texts long enough"
    return Examples(tuple(texts), tuple(labels))


@pytest.fixture(scope="module")
def ag_news(still_model) -> dict[str, Examples]:
    """600 train and 100 test texts of the real AG News, cut to lengths that sit on the bucket
    edges: the first 64 (a fine-tune's sample) 5 to 17 tokens, a third of them 17; the others
    many 17, 33 and 49, the rest 3 to 48; none longer than 49."""
    tokenizer = load_tokenizer(still_model)
    rng = np.random.default_rng(0)
    first = [17] * 24 + list(rng.integers(5, 17, 40))
    rest = [*EDGES * 150, *rng.integers(3, 49, 86)]
    sizes = {TRAIN: [*first, *rng.permutation(rest)], TEST: [*EDGES * 25, *rng.integers(3, 49, 25)]}
    splits = {}
    for split, lengths in sizes.items():
        source = [json.loads(line) for line in (shared_data() / "ag_news" / f"{split}.jsonl").read_text().splitlines()[:3000]]
        splits[split] = _texts_of_length(source, [int(n) for n in lengths], tokenizer)
    return splits


class Widths:
    """The batch sizes and widths a model's forward passes saw, and how many real tokens."""

    def __init__(self, model):
        self.seen: list[tuple[int, int]] = []
        self.tokens = 0
        model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.seen.append(tuple(kwargs["input_ids"].shape))
        self.tokens += int(kwargs["attention_mask"].sum())


def test_the_gpu_choices_can_be_asked_for_on_any_device(monkeypatch):
    cpu = torch.device("cpu")
    assert Accelerator.native(cpu) == accelerator() == accelerator("auto")
    assert not accelerator().static_shapes and accelerator().eval_batch == 128 and not accelerator().bf16
    monkeypatch.setenv(ACCELERATOR_ENV, "gpu")
    gpu = accelerator()
    assert (gpu.device, gpu.static_shapes, gpu.eval_batch, gpu.bf16, gpu.fused_adam) == (cpu, True, 512, True, True)
    assert gpu.describe() == "gpu: static shapes, eval 512, bf16, fused Adam"
    monkeypatch.setenv(ACCELERATOR_ENV, "gpu-fp32")
    assert accelerator() == Accelerator.gpu_choices(cpu, bf16=False, choices="gpu-fp32")
    assert not accelerator().bf16 and accelerator().static_shapes
    monkeypatch.setenv(ACCELERATOR_ENV, "cpu")
    assert accelerator().describe() == "cpu: dynamic shapes, eval 128, fp32"
    monkeypatch.setenv(ACCELERATOR_ENV, "tpu")
    with pytest.raises(JobError, match="CTUNE_ACCELERATOR='tpu' is none of auto, gpu, gpu-fp32, cpu"):
        accelerator()


def test_static_widths_are_buckets_that_never_cut_a_text():
    static = Accelerator.gpu_choices(torch.device("cpu"))
    for max_length in (64, 128, 200, 512):
        for longest in range(1, max_length + 1):
            width = batch_width(longest, max_length, static)
            assert longest <= width <= max_length, (longest, max_length, width)
            assert width in BUCKETS or width == max_length
            assert batch_width(longest, max_length, Accelerator.native(torch.device("cpu"))) == longest
    assert len({batch_width(n, 128, static) for n in range(1, 129)}) == 6  # 16, 32, 48, 64, 96, 128


def _fine_tune(model_folder: str, data: dict[str, Examples], choice: str, monkeypatch):
    """A 64-label fine-tune on the tiny model under ``choice``: (stats, logits, widths seen)."""
    monkeypatch.setenv(ACCELERATOR_ENV, choice)
    names = sorted(set(data[TRAIN].labels))
    tokenizer = load_tokenizer(model_folder)
    train = tokenize(tokenizer, data[TRAIN].texts[:64], MAX_LENGTH)
    labels = [names.index(y) for y in data[TRAIN].labels[:64]]
    model = load_classifier(model_folder, len(names), seed=7)
    widths = Widths(model)
    stats = train_classifier(model, train, labels, Optimization(epochs=3, batch_size=16, lr=1e-3,
                                                                  max_length=MAX_LENGTH), seed=7)
    logits = predict_logits(model, tokenize(tokenizer, data[TRAIN].texts, MAX_LENGTH), MAX_LENGTH)
    return stats, logits, widths


def test_a_fine_tune_on_static_shapes_equals_the_dynamic_one(still_model, ag_news, monkeypatch):
    # GIVEN the same fine-tune with the CPU's choices and with the GPU's (fp32)
    dynamic, dyn_logits, dyn_widths = _fine_tune(still_model, ag_news, "auto", monkeypatch)
    static, static_logits, static_widths = _fine_tune(still_model, ag_news, "gpu-fp32", monkeypatch)
    # THEN the same optimizer steps, and the logits of 600 texts agree within fp32's tolerance
    assert static["optimizer_steps"] == dynamic["optimizer_steps"] == 12
    assert np.abs(static_logits - dyn_logits).max() <= FP32_TOLERANCE
    # AND the paths really differed: every batch (longest 17) padded to the bucket of 32, not
    # to 17; the evaluation 512 texts at a time, each batch padded to a bucket
    assert {w for _, w in static_widths.seen[:12]} == {32} and {w for _, w in dyn_widths.seen[:12]} == {17}
    assert [n for n, _ in static_widths.seen[12:]] == [512, 88] and {w for _, w in static_widths.seen[12:]} <= set(BUCKETS)
    assert [n for n, _ in dyn_widths.seen[12:]] == [128] * 4 + [88]
    # AND neither cut a text: the same real tokens went through the model
    assert static_widths.tokens == dyn_widths.tokens


def test_bf16_autocast_runs_on_cpu_and_stays_close_to_fp32(still_model, ag_news, monkeypatch):
    fp32, fp32_logits, _ = _fine_tune(still_model, ag_news, "gpu-fp32", monkeypatch)
    monkeypatch.setenv(ACCELERATOR_ENV, "gpu")
    model = load_classifier(still_model, 4, seed=7)
    dtypes: list[torch.dtype] = []
    model.classifier.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    bf16, bf16_logits, _ = _fine_tune(still_model, ag_news, "gpu", monkeypatch)
    with accelerator().autocast():
        model(input_ids=torch.tensor([[101, 2023, 102]]))
    assert dtypes == [torch.bfloat16]
    assert bf16["optimizer_steps"] == fp32["optimizer_steps"]
    difference = np.abs(bf16_logits - fp32_logits).max()
    assert 0 < difference <= BF16_TOLERANCE  # bf16 rounded something, and not much


def _steps_in_process(store_root, spec, dataset, choice: str, monkeypatch) -> dict:
    """Every step of ``spec``'s plan run in this process under ``choice``: {kind: store prefix}."""
    monkeypatch.setenv(ACCELERATOR_ENV, choice)
    store = open_store(store_root)
    stage(store, dataset)
    prefixes = {}
    for step in build_plan(spec, {"ag_news": dataset.prefix}).steps.values():
        store.write_bytes(f"{step.prefix}/{STEP_FILE}", step.to_json().encode())
        handler = importlib.import_module(f"jobs.kinds.{step.kind}").run
        run_step(f"{store.root}/{step.prefix}/{STEP_FILE}", step.kind, handler)
        prefixes[step.kind] = step.prefix
    return prefixes


def test_an_inter_training_and_its_cell_on_static_shapes_equal_the_dynamic_ones(still_model, ag_news, tmp_path,
                                                                               monkeypatch):
    # GIVEN the clust setting's steps (cluster, inter-train, a 64-label fine-tune), run by their jobs
    from safetensors.torch import load_file

    spec = parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["clust"], "model": still_model,
                       "budgets": [64], "repetitions": 1,
                       "clustering": {"method": "kmeans", "n_clusters": 8, "n_init": 2, "max_iter": 5},
                       "intertrain": {"batch_size": 32, "max_length": MAX_LENGTH, "lr": 1e-3},
                       "finetune": {"epochs": 3, "batch_size": 16, "max_length": MAX_LENGTH, "lr": 1e-3}})
    dataset = staged_dataset("ag_news", ag_news, sorted(set(ag_news[TRAIN].labels)))
    logits: dict[str, np.ndarray] = {}

    def keep_logits(*args, **kwargs):
        logits[choice] = predict_logits(*args, **kwargs)
        return logits[choice]

    monkeypatch.setattr(finetune, "predict_logits", keep_logits)
    runs = {}
    for choice in ("auto", "gpu-fp32"):
        runs[choice] = _steps_in_process(tmp_path / choice, spec, dataset, choice, monkeypatch)
    # THEN both inter-trainings took the same steps and their encoders agree within tolerance
    summaries = {c: json.loads((tmp_path / c / p["intertrain"] / "train.json").read_text()) for c, p in runs.items()}
    assert summaries["auto"]["optimizer_steps"] == summaries["gpu-fp32"]["optimizer_steps"] == 19
    assert summaries["gpu-fp32"]["accelerator"].startswith("gpu-fp32: static shapes")
    encoders = {c: load_file(str(tmp_path / c / p["intertrain"] / "model/model.safetensors")) for c, p in runs.items()}
    assert encoders["auto"].keys() == encoders["gpu-fp32"].keys()
    assert max(float((encoders["auto"][k] - encoders["gpu-fp32"][k]).abs().max()) for k in encoders["auto"]) \
        <= FP32_TOLERANCE
    # AND so did the fine-tune cells on them, to their test logits and predictions
    metrics = {c: json.loads((tmp_path / c / p["finetune"] / "metrics.json").read_text()) for c, p in runs.items()}
    assert metrics["auto"]["optimizer_steps"] == metrics["gpu-fp32"]["optimizer_steps"] == 12
    assert metrics["auto"]["accelerator"].startswith("auto: dynamic shapes")
    assert np.abs(logits["auto"] - logits["gpu-fp32"]).max() <= FP32_TOLERANCE
    assert (tmp_path / "auto" / runs["auto"]["finetune"] / "predictions.jsonl").read_bytes() == \
        (tmp_path / "gpu-fp32" / runs["gpu-fp32"]["finetune"] / "predictions.jsonl").read_bytes()


MLM = MlmOptimization(epochs=2, lr=1e-3, batch_size=16, max_length=MAX_LENGTH, replication=2, mask_prob=0.15)


def test_mlm_batches_on_bucketed_widths_keep_every_label_on_its_token(still_model, ag_news):
    # GIVEN the masked-LM batches of 200 texts, on the GPU's static shapes
    tokenizer = load_tokenizer(still_model)
    texts = ag_news[TRAIN].texts[:200]
    static = Accelerator.gpu_choices(torch.device("cpu"), bf16=False)
    lengths, batch = mlm_batches(tokenizer, texts, MLM, seed=3, acc=static)
    _, full = mlm_batches(tokenizer, texts, MLM, seed=3, acc=Accelerator.native(torch.device("cpu")))
    original = tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH)["input_ids"]
    for epoch in range(2):
        for start in range(0, 200, 16):
            idx = np.arange(start, min(start + 16, 200))
            b = batch(idx, epoch)
            ids, labels, mask = b["input_ids"].numpy(), b["labels"].numpy(), b["attention_mask"].numpy()
            # THEN inputs and labels share the bucket's width, which holds the batch's longest text
            assert ids.shape == labels.shape == mask.shape and ids.shape[1] in BUCKETS
            assert ids.shape[1] >= lengths[idx].max()
            assert (labels != -100).sum() == (full(idx, epoch)["labels"].numpy() != -100).sum() > 0
            for row, i in enumerate(idx):
                n = int(lengths[i])
                # every label sits on a real token, names the token the text had there, and
                # the positions past the text are padding, unlabeled and masked out
                chosen = np.flatnonzero(labels[row] != -100)
                assert chosen.max() < n and all(labels[row, j] == original[i][j] for j in chosen)
                assert ids[row, n - 1] == tokenizer.sep_token_id
                assert (mask[row, :n] == 1).all() and (mask[row, n:] == 0).all()
                assert (ids[row, n:] == tokenizer.pad_token_id).all() and (labels[row, n:] == -100).all()


def test_mlm_inter_training_on_static_shapes_equals_the_dynamic_one(still_model, ag_news, monkeypatch):
    tokenizer = load_tokenizer(still_model)
    texts = ag_news[TRAIN].texts[:200]
    out = {}
    for choice in ("auto", "gpu-fp32"):
        monkeypatch.setenv(ACCELERATOR_ENV, choice)
        model = load_mlm(still_model, seed=0)
        stats = train_mlm(model, tokenizer, texts, MLM, seed=0, group_by_length=True)
        out[choice] = stats, {k: v.detach().clone() for k, v in model.state_dict().items()}
    (dynamic, dyn_weights), (static, static_weights) = out["auto"], out["gpu-fp32"]
    assert dynamic["optimizer_steps"] == static["optimizer_steps"] == 26
    assert abs(dynamic["final_loss"] - static["final_loss"]) <= FP32_TOLERANCE
    assert max(float((dyn_weights[k] - static_weights[k]).abs().max()) for k in dyn_weights) <= FP32_TOLERANCE
