"""``ctune predict`` runs here, in its own process, so the controller never loads torch:
``python -m jobs.lib.predict MODEL TEXTS [--format jsonl|csv] [--output FILE] [--text-field F]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.contract.errors import CtuneError, cli_exit_code
from jobs.data import DataError, output_stream
from jobs.serving import read_texts, write_predictions

__all__ = ["predict", "read_texts", "write_predictions"]


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
