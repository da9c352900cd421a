"""What the paper's grid costs on this device, projected from measured rates.

Each accelerated step of ``experiments/paper.yaml`` is priced from its texts: an
inter-training at the training rate (masked-LM: 30 epochs, priced like classification, its
larger output layer ignored), a cell at the training rate for its budget and epochs plus its
test set at the evaluation rate plus a cell's measured fixed cost, an embedding or analysis
at the evaluation rate. Clustering and the classic cells run on CPU and are left out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.packing import CellCost
from bench.throughput import LENGTH, evaluation, sample_texts, training
from controller.plan.datacache import DatasetSummary
from controller.plan.datasets import prepare, resolve_data_dir
from controller.plan.graph import build_plan
from controller.plan.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Rates:
    train: float
    """Texts/s, training on a corpus (forward and backward)."""
    eval: float
    """Texts/s, evaluation."""
    cell_train: float = 0.0
    """Texts/s of a cell's training (small random batches), as the cells measured it."""
    per_cell_s: float = 0.0
    """A packed cell's wall time beyond its training and evaluation (model copy, head, I/O)."""


def bert_base_sized(folder: Path) -> str:
    """A randomly initialised BERT-base (12 layers, 768 wide) with MiniLM's tokenizer: the
    paper's model's cost, no download."""
    import torch
    from transformers import BertConfig, BertModel

    from jobs.lib import models

    tokenizer = models.load_tokenizer("minilm")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def measure(texts: list[str], model: str, n_train: int, n_eval: int) -> Rates:
    train_texts, labels = sample_texts(texts, n_train)
    return Rates(training(train_texts, labels, model)[0].texts_per_s, evaluation(texts[:n_eval], model)[0].texts_per_s)


def step_seconds(plan, summaries: dict, rates: Rates) -> dict[str, float]:
    """Projected seconds per step kind."""
    out: dict[str, float] = {}
    for step in plan.steps.values():
        p, kind = step.params, step.kind
        name = step.label.split()[0]
        n_train, n_test, n_corpus = (summaries[name].n_train, summaries[name].n_test, summaries[name].n_corpus)
        if kind == "intertrain":
            seconds = n_corpus * p.options.epochs / rates.train
        elif kind == "finetune":
            seconds = p.budget * p.epochs / (rates.cell_train or rates.train) + n_test / rates.eval + rates.per_cell_s
        elif kind == "embed":
            seconds = (n_train + n_test) / rates.eval
        elif kind == "analyze":
            seconds = 2 * min(p.max_texts, n_test) / rates.eval
        else:
            continue
        out[kind] = out.get(kind, 0.0) + seconds
    return out


def summaries_of(spec_path: str = "experiments/paper.yaml") -> dict[str, DatasetSummary]:
    """The datasets' sizes (read here; ``bench/prepare_gpu.sh`` carries them to a GPU machine)."""
    spec = load_spec(REPO / spec_path)
    data_dir = resolve_data_dir(spec, None)
    return {d.name: prepare(d, data_dir).summary for d in spec.datasets}


def project(rates: dict[str, Rates], summaries: dict[str, DatasetSummary],
            spec_path: str = "experiments/paper.yaml") -> str:
    spec = load_spec(REPO / spec_path)
    plan = build_plan(spec, {n: s.prefix for n, s in summaries.items()}, {n: s.corpus_prefix for n, s in summaries.items()})
    lines = [f"projected accelerator hours of {spec_path} ({len(plan.steps)} steps, at length {LENGTH}):"]
    for model, r in rates.items():
        by_kind = step_seconds(plan, summaries, r)
        parts = ", ".join(f"{k} {v / 3600:.1f}" for k, v in sorted(by_kind.items()))
        lines.append(f"  {model:<18} {sum(by_kind.values()) / 3600:8.1f} h  ({parts}); texts/s: train {r.train:.1f}, "
                     f"a cell's training {r.cell_train:.1f}, eval {r.eval:.1f}; {r.per_cell_s:.1f} s more a cell")
    return "\n".join(lines)


def from_cells(train: float, evaluation: float, cell: CellCost) -> Rates:
    """MiniLM's rates, with the cells' own measure of their training and their fixed cost."""
    return Rates(train, evaluation, cell.train_texts / cell.train_s,
                 max(0.0, cell.wall_s - cell.train_s - cell.eval_s))


def bert_base_rates(texts: list[str], n_train: int, n_eval: int, minilm: Rates) -> Rates:
    """Measured for the BERT-base-sized model; a cell's training scaled like the corpus rate."""
    with tempfile.TemporaryDirectory() as folder:
        measured = measure(texts, bert_base_sized(Path(folder)), n_train, n_eval)
    scale = measured.train / minilm.train
    return Rates(measured.train, measured.eval, minilm.cell_train * scale, minilm.per_cell_s)
