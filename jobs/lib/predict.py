"""``ctune predict`` runs here, in its own process, so the controller never loads torch:
``python -m jobs.lib.predict MODEL TEXTS [--format jsonl|csv] [--output FILE] [--text-field F]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import IO

from jobs.contract.errors import CtuneError, cli_exit_code
from jobs.data import DataError, output_stream, read_examples


def read_texts(path: Path, text_field: str) -> list[str]:
    """Texts from .jsonl/.csv (a text field) or .txt (one text per line)."""
    if path.suffix == ".txt":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise DataError(f"{path}: file is empty")
        return texts
    return list(read_examples(path, text_field, None).texts)


def predict(model_dir: Path, texts: list[str], max_length: int = 128) -> list[dict]:
    import numpy as np
    from transformers import AutoModelForSequenceClassification

    from jobs.lib import models
    from jobs.lib.inference import embed_mean, predict_texts
    from jobs.lib.probabilities import softmax
    from jobs.lib.probe_head import apply_head, read_head
    from jobs.lib.tokens import tokenize

    if not (model_dir / "config.json").is_file():
        raise DataError(f"{model_dir} is not a model folder (no config.json)")
    tokenizer = models.load_tokenizer(str(model_dir))
    head = read_head(model_dir)
    if head is not None:  # frozen encoder(s) and a linear probe on their mean-pooled embeddings
        length = int(head.get("max_length", max_length))
        tokens = tokenize(tokenizer, texts, length)
        folders = [model_dir, *([model_dir / head["beside"]] if head.get("beside") else [])]
        embeddings = np.hstack([embed_mean(models.load_encoder(str(f)), tokens, length) for f in folders])
        probs = apply_head(head, embeddings)
        names = list(head["labels"])
    else:
        model = models.load_pretrained(AutoModelForSequenceClassification.from_pretrained, str(model_dir))
        probs = softmax(predict_texts(model, tokenizer, texts, max_length))
        names = [model.config.id2label[i] for i in range(probs.shape[1])]
    return [{"text": t, "label": names[int(p.argmax())], "score": float(p.max()),
             "scores": {n: float(v) for n, v in zip(names, p)}} for t, p in zip(texts, probs)]


def write_predictions(rows: list[dict], fmt: str, out: IO[str]) -> None:
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    names = list(rows[0]["scores"]) if rows else []
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "score", *[f"score_{n}" for n in names]])
    for r in rows:
        writer.writerow([r["text"], r["label"], f"{r['score']:.6f}", *[f"{r['scores'][n]:.6f}" for n in names]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctune predict")
    parser.add_argument("model")
    parser.add_argument("texts")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument("--output")
    parser.add_argument("--text-field", default="text")
    args = parser.parse_args(argv)
    try:
        rows = predict(Path(args.model), read_texts(Path(args.texts), args.text_field))
    except CtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return cli_exit_code(exc)
    with output_stream(args.output) as out:
        write_predictions(rows, args.format, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
