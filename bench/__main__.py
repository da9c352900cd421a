"""Benchmarks: ``make bench`` (this machine) and ``bench/gpu.sh`` (a GPU machine). Each line
prints ours, the peer measured in the same run on the same data, model and device, and the
ratio; bigger is better.

* ``ctune plan experiments/paper.yaml`` (3,174 steps) against a bare interpreter's start,
  cold (datasets read) and warm (dataset summaries cached); target under 1.5 s;
* training texts/s against ``transformers.Trainer`` (defaults, padded to 128; and with
  ``DataCollatorWithPadding``), evaluation texts/s against ``pipeline("text-classification")``
  and a plain padded loop (packaged MiniLM, real AG News texts, length 128);
* N 64-label cells as N step processes against one packed process;
* the projected accelerator hours of ``experiments/paper.yaml`` with MiniLM and with a
  BERT-base-sized model, from the rates measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import cost, packing, throughput
from controller.plan.datacache import DatasetSummary
from jobs.data import default_data_dir, read_examples
from jobs.lib import models

SECTIONS = ("plan", "training", "evaluation", "packing", "cost")


def bench_plan(runs: int = 3) -> str:
    repo = Path(__file__).resolve().parents[1]

    def run(argv: list[str], env: dict) -> float:
        return throughput.timed(lambda: subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True))

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CTUNE_CACHE": cache}
        plan = [sys.executable, "-m", "controller.cli", "plan", "experiments/paper.yaml", "--store", cache + "/store"]
        bare = min(run([sys.executable, "-c", "pass"], env) for _ in range(runs))
        cold = run(plan, env)
        warm = min(run(plan, env) for _ in range(runs))
    return (f"ctune plan experiments/paper.yaml: cold {cold:.2f} s, warm {warm:.2f} s (target 1.5 s); "
            f"a bare interpreter starts in {bare:.2f} s, ratio warm/bare {warm / bare:.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--texts", type=int, default=512, help="training texts per contender")
    parser.add_argument("--eval-texts", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--base-texts", type=int, default=64, help="training texts for the BERT-base-sized model")
    parser.add_argument("--only", help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--summaries", help="the paper's dataset sizes as JSON (bench/prepare_gpu.sh), else read here")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    models.configure_threads()
    print(f"device: {models.device()}" + (f" ({_gpu_name()})" if models.device().type == "cuda" else
                                          f" ({os.cpu_count()} CPU cores)"), flush=True)
    if "plan" in only:
        print(bench_plan(), flush=True)
    data_dir = default_data_dir()
    if data_dir is None:
        raise SystemExit("the shared datasets are needed (set CTUNE_DATA_DIR)")
    texts = list(read_examples(data_dir / "ag_news" / "train.jsonl").texts)
    rates: dict[str, cost.Rates] = {}
    if only & {"training", "cost"}:
        train_texts, labels = throughput.sample_texts(texts, args.texts)
        measured = throughput.training(train_texts, labels, "minilm")
        print(throughput.report(f"training, MiniLM, {args.texts} texts, batch 64, length 128", measured), flush=True)
    if only & {"evaluation", "cost"}:
        evaluated = throughput.evaluation(texts[:args.eval_texts], "minilm")
        print(throughput.report(f"evaluation, MiniLM, {args.eval_texts} texts", evaluated), flush=True)
    if only & {"packing", "cost"}:
        text, cell = packing.run(data_dir, args.cells)
        print(text, flush=True)
    if "cost" in only:
        rates["MiniLM"] = cost.from_cells(measured[0].texts_per_s, evaluated[0].texts_per_s, cell)
        rates["BERT-base-sized"] = cost.bert_base_rates(texts, args.base_texts, args.base_texts * 2, rates["MiniLM"])
        if args.summaries:
            raw = json.loads(Path(args.summaries).read_text())
            summaries = {k: DatasetSummary(**{**v, "labels": tuple(v["labels"])}) for k, v in raw.items()}
        else:
            summaries = cost.summaries_of()
        print(cost.project(rates, summaries), flush=True)


def _gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))


if __name__ == "__main__":
    main()
