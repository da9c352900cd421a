"""N fine-tune cells (64 labels, the paper's protocol) as N step processes against one packed
process, through the job entry point the backends start; also gives a cell's wall time."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.throughput import timed
from controller.plan.datasets import prepare, stage_prepared
from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.run.backends.base import write_step_files
from controller.run.backends.local import job_env
from jobs.contract.outputs import read_metrics
from jobs.contract.steps import step_uri
from jobs.storage import open_store

REPO = Path(__file__).resolve().parents[1]


def cells(store_root: str, data_dir: Path, n: int, max_test: int) -> list:
    spec = parse_spec({"name": "bench", "datasets": [{"name": "ag_news", "max_test": max_test}],
                       "settings": ["bert"], "budgets": [64], "repetitions": n})
    prepared = prepare(spec.datasets[0], data_dir)
    store = open_store(store_root)
    stage_prepared(store, prepared)
    plan = build_plan(spec, {"ag_news": prepared.prefix})
    steps = list(plan.steps.values())
    write_step_files(store, steps)
    return steps


@dataclass(frozen=True)
class CellCost:
    wall_s: float
    """A packed cell's wall time."""
    train_s: float
    eval_s: float
    """What the cell measured of its own training and evaluation."""
    train_texts: int
    eval_texts: int


def run(data_dir: Path, n: int = 4, max_test: int = 500) -> tuple[str, CellCost]:
    """n cells one process each, then packed in one process (fresh stores): the report and
    what a packed cell cost."""
    seconds = {}
    measured: list[dict] = []
    for mode in ("processes", "packed"):
        with tempfile.TemporaryDirectory() as root:
            steps = cells(root, data_dir, n, max_test)
            uris = [step_uri(root, s.prefix) for s in steps]
            argv = [sys.executable, "-m", "jobs", "finetune"]

            def go(uris=uris, argv=argv, mode=mode) -> None:
                groups = [[u] for u in uris] if mode == "processes" else [uris]
                for group in groups:
                    subprocess.run([*argv, *[a for u in group for a in ("--step", u)]], cwd=REPO, env=job_env(),
                                   check=True, capture_output=True)

            seconds[mode] = timed(go)
            if mode == "packed":
                measured = [read_metrics(open_store(root), s.prefix) for s in steps]
    text = (f"{n} cells (64 labels, 10 epochs, {max_test} test texts): one process each "
            f"{seconds['processes']:.1f} s ({seconds['processes'] / n:.1f} s a cell), packed in one process "
            f"{seconds['packed']:.1f} s ({seconds['packed'] / n:.1f} s a cell); "
            f"ratio {seconds['processes'] / seconds['packed']:.2f}x")
    cost = CellCost(seconds["packed"] / n, sum(m["train_s"] for m in measured) / n,
                    sum(m["eval_s"] for m in measured) / n, 64 * 10, max_test)
    return text, cost
