"""A version's model card: ``README.md`` in the Hugging Face model-card convention (YAML front
matter with the base model, tags and metrics, then a body), rendered from its record."""

from __future__ import annotations

import yaml

from controller.models.listing import evidence_lines, outcome, utc_minute
from controller.models.round_text import round_lines

LOADING_FINETUNED = """```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import torch

tokenizer = AutoTokenizer.from_pretrained("model")
model = AutoModelForSequenceClassification.from_pretrained("model").eval()
batch = tokenizer(["a text to label"], padding=True, truncation=True, max_length=128, return_tensors="pt")
with torch.no_grad():
    label = model.config.id2label[int(model(**batch).logits.argmax(-1)[0])]
```"""

LOADING_PROBE = """```python
import json, numpy as np, torch
from transformers import AutoModel, AutoTokenizer

head = json.load(open("model/probe_head.json"))    # a logistic regression on mean-pooled embeddings
folders = ["model"] + (["model/" + head["beside"]] if head.get("beside") else [])
tokenizer = AutoTokenizer.from_pretrained("model")
batch = tokenizer(["a text to label"], padding=True, truncation=True, max_length=head["max_length"],
                  return_tensors="pt")
parts = []
for folder in folders:                               # the inter-trained encoder, then the pretrained one
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(folder).eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    parts.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
logits = np.hstack(parts) @ np.array(head["weight"]).T + np.array(head["bias"])
label = head["labels"][int(logits.argmax(-1)[0])]
```"""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _word(record: dict) -> str:
    """The gate's word as the card says it: promoted only once the pointer moved."""
    gate = record.get("gate") or {}
    word = outcome(record)
    if word == "promote":
        return "promoted" if gate.get("moved") or "outcome" not in gate else "passed the gate (the pointer not yet moved)"
    return {"refuse": "refused", "inconclusive": "inconclusive"}.get(word, word)


def _round_section(record: dict) -> list[str]:
    lines = round_lines(record) or ["nothing recorded (a version from before rounds were reported)"]
    return [f"- {line.strip()}" for line in lines]


def render_card(record: dict) -> str:
    gate = record.get("gate") or {}
    new = gate.get("new") or {}
    front = {
        "base_model": record.get("base_model"),
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["text-classification", "cluster-and-tune", f"setting-{record.get('setting')}"],
        "model-index": [{"name": record["version"], "results": [{
            "task": {"type": "text-classification"},
            "dataset": {"name": "dev", "type": "custom", "digest": record.get("dev_digest")},
            "metrics": [{"type": "accuracy", "value": round(new.get("accuracy", 0.0), 2)},
                        {"type": "f1", "name": "macro-F1", "value": round(new.get("macro_f1", 0.0), 2)}]}]}],
    }
    created = f"{utc_minute(record.get('created', 0))} UTC"
    current = gate.get("current") or {}
    decision = f"{_word(record)}: {gate.get('why', '')}"
    settings = gate.get("settings") or {"tolerance": gate.get("tolerance")}
    agreement = record.get("agreement") or {}
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
        f"# {record.get('registry', 'model')} @ {record['version']}", "",
        f"A text classifier trained with Cluster & Tune (`ctune train`, setting `{record.get('setting')}`) on "
        f"{record.get('labeled')} labeled texts and {record.get('corpus')} corpus texts, from `{record.get('base_model')}`. "
        f"Created {created} by cluster-tune {record.get('code_version')}.", "",
        "## Labels", "", ", ".join(f"`{name}`" for name in record.get("labels", [])), "",
        "## Data", "",
        "| | texts | digest |", "|---|---:|---|",
        f"| labeled | {record.get('labeled')} | `{record.get('labeled_digest', '')[:16]}` |",
        f"| corpus (labeled texts included) | {record.get('corpus')} | `{record.get('corpus_digest', '')[:16]}` |",
        f"| dev (never trained on) | {new.get('n', '-')} | `{(record.get('dev_digest') or '')[:16]}` |", "",
        "## The clusters and the labels", "",
        (f"AMI {agreement['labeled_ami']:.3f}, NMI {agreement['labeled_nmi']:.3f} between the corpus clusters and "
         "the labels of the labeled texts (0: no agreement beyond chance)." if "labeled_ami" in agreement
         else "No clustering in this setting."), "",
        "## Dev set and promotion", "",
        "| | accuracy | macro-F1 |", "|---|---:|---:|",
        f"| this version | {_pct(new.get('accuracy'))} | {_pct(new.get('macro_f1'))} |",
        f"| current before ({gate.get('current_version') or 'none'}) | {_pct(current.get('accuracy'))} | "
        f"{_pct(current.get('macro_f1'))} |", "",
        f"Gate ({', '.join(f'{k} {v}' for k, v in settings.items())}): **{decision}**", "",
        *(f"- {line.strip()}" for line in evidence_lines(gate)), "",
        "## This round", "",
        *_round_section(record), "",
        "## How to load it", "",
        "With cluster-tune: `ctune predict <registry>@" + record["version"] + " texts.jsonl`. With plain "
        "`transformers`, from the version's `model/` folder:", "",
        LOADING_PROBE if record.get("probe") else LOADING_FINETUNED, "",
        "## Steps", "", *(f"- {kind}: `{sid}`" for kind, sid in record.get("steps", {}).items()), "",
    ]
    return "\n".join(lines)
