"""A version's model card: ``README.md`` in the Hugging Face model-card convention (YAML front
matter with the base model, tags and metrics, then a body), rendered from its record."""

from __future__ import annotations

import yaml

from controller.models.listing import evidence_lines, outcome, utc_minute
from controller.models.round_text import round_lines

LOADING_ONNX = """```python
import json
import numpy as np
import onnxruntime as ort                           # pip install onnxruntime tokenizers: nothing else
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("onnx/tokenizer.json")   # truncation and padding as in training
labels = json.load(open("onnx/labels.json"))["labels"]
session = ort.InferenceSession("onnx/model.onnx")         # onnx/model.int8.onnx: faster, where the gate accepted it
texts = ["a text to label", "another one"]
encoded = tokenizer.encode_batch(texts)
inputs = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
          "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
probabilities = session.run(["probabilities"], inputs)[0]   # one row per text, one column per label
predicted = [labels[i] for i in probabilities.argmax(-1)]
```"""

LOADING_FINETUNED = """```python
from transformers import pipeline

classify = pipeline("text-classification", model="model", truncation=True, max_length=128)
print(classify(["a text to label"]))                  # [{'label': ..., 'score': ...}]
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


def _library(record: dict) -> dict:
    """What loads the whole classifier, truthfully: a fine-tuned ``model/`` is a plain
    ``transformers`` sequence classifier; a probe's is two encoders and a JSON head, so the
    ONNX graph (``onnx/``) is what a serving stack loads."""
    graph = bool(record.get("onnx"))
    if not record.get("probe"):
        return {"library_name": "transformers", "pipeline_tag": "text-classification",
                "tags": ["text-classification", *(["onnx"] if graph else [])]}
    if graph:
        return {"library_name": "onnx", "pipeline_tag": "text-classification", "tags": ["text-classification", "onnx"]}
    return {"library_name": "transformers", "tags": ["feature-extraction", "custom-head"]}


def _folders(record: dict) -> list[str]:
    lines = ["- `model/`: " + ("a `transformers` sequence classifier (`pipeline(\"text-classification\")` loads it)"
                               if not record.get("probe") else
                               "the inter-trained encoder (`AutoModel`), the pretrained one in `base/` for the "
                               "concatenated settings, and `probe_head.json` (a logistic regression on their "
                               "mean-pooled embeddings): not a `pipeline` model")]
    graph = record.get("onnx")
    if graph:
        int8 = graph.get("int8") or {}
        accepted = "accepted by the gate against the fp32 graph" if int8.get("accepted") else (
            f"not accepted by the gate ({(int8.get('gate') or {}).get('outcome', 'not judged')}): `ctune predict` "
            "runs the fp32 graph")
        lines += [f"- `onnx/`: the whole classifier as one ONNX graph (opset {graph.get('opset')}): `model.onnx`, "
                  f"`input_ids` and `attention_mask` in, `probabilities` out; its labels equal the model's on "
                  f"{100 * graph.get('agreement', 0):.2f}% of the {graph.get('texts')} dev texts, probabilities within "
                  f"{graph.get('max_difference', 0):.1e}; `model.int8.onnx` (dynamic int8 weights), {accepted}; "
                  "`tokenizer.json`, `labels.json`"]
    return lines


def _loading(record: dict) -> list[str]:
    onnx = ["With `onnxruntime` and `tokenizers` alone (no torch, no transformers), from the version's folder:", "",
            LOADING_ONNX, ""] if record.get("onnx") else []
    torch = (["With `torch` and `transformers`, from the version's `model/` folder:", "", LOADING_PROBE, ""]
             if record.get("probe") else
             ["With `transformers`, from the version's `model/` folder:", "", LOADING_FINETUNED, ""])
    return ["With cluster-tune: `ctune predict <registry>@" + record["version"] + " texts.jsonl`.", "", *onnx, *torch]


def render_card(record: dict) -> str:
    gate = record.get("gate") or {}
    new = gate.get("new") or {}
    library = _library(record)
    front = {
        "base_model": record.get("base_model"),
        **{k: v for k, v in library.items() if k != "tags"},
        "tags": [*library["tags"], "cluster-and-tune", f"setting-{record.get('setting')}"],
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
        "## Folders", "", *_folders(record), "",
        "## How to load it", "", *_loading(record),
        "## Steps", "", *(f"- {kind}: `{sid}`" for kind, sid in record.get("steps", {}).items()), "",
    ]
    return "\n".join(lines)
