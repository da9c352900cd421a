"""Seeded kill trials: the controller or one of its step processes killed at a random moment
(SIGKILL, SIGTERM or Ctrl-C's SIGINT), then the run started again.

Each trial must end with the whole grid committed, no step that had finished computed again,
the results equal to an undisturbed run's, and no process of the killed run left behind
(job processes and their worker pools included). ``CTUNE_FAULT_TRIALS`` (default 3; ``make
test-faults``: 20) and ``CTUNE_FAULT_SEED`` choose the trials.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, committed_steps, read_results

pytestmark = pytest.mark.faults

TRIALS = int(os.environ.get("CTUNE_FAULT_TRIALS", "3"))
SEED = int(os.environ.get("CTUNE_FAULT_SEED", "0"))
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live processes of a session (the controller starts one: its jobs and their pools are in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]))
        except (OSError, ValueError, IndexError):
            continue
    return found


def job_processes(sid: int) -> list[int]:
    return [pid for pid, cmd in session_processes(sid) if " -m jobs " in cmd and pid != sid]


def start(spec: Path, jobs: int = 2) -> subprocess.Popen:
    """``--jobs 1`` gives sIB both cores: its restarts then run in a worker pool."""
    return subprocess.Popen([sys.executable, "-m", "controller.cli", "run", str(spec), "--jobs", str(jobs)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def outcome(store: Path) -> list[tuple[str, str, str]]:
    return sorted((r["setting"], r["repetition"], r["accuracy"])
                  for r in read_results(store / "experiments/tiny/report/results.csv"))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, tiny_model):
    """The tiny grid run once undisturbed: how long it takes and what it finds."""
    from conftest import shared_data, write_slice

    root = tmp_path_factory.mktemp("faults")
    data = root / "data" / "ag_news"
    data.mkdir(parents=True)
    write_slice(shared_data() / "ag_news" / "train.jsonl", data / "train.jsonl", 240)
    write_slice(shared_data() / "ag_news" / "test.jsonl", data / "test.jsonl", 60)

    def spec_for(store: Path) -> Path:
        import json

        path = store.with_suffix(".json")
        path.write_text(json.dumps({
            "name": "tiny", "datasets": ["ag_news"], "model": tiny_model, "settings": ["bert", "clust"],
            "budgets": [16], "repetitions": 2, "clustering": {"n_clusters": 4, "n_init": 2, "max_iter": 5},
            "intertrain": {"batch_size": 32, "max_length": 32},
            "finetune": {"epochs": 2, "batch_size": 8, "max_length": 32},
            "data_dir": str(root / "data"), "store": str(store)}))
        return path

    store = root / "undisturbed"
    t0 = time.time()
    proc = start(spec_for(store))
    assert proc.wait(timeout=900) == 0, proc.stderr.read()
    return {"seconds": time.time() - t0, "results": outcome(store), "spec_for": spec_for, "root": root}


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_run_resumes_losslessly(trial, baseline):
    rng = random.Random(SEED * 1000 + trial)
    target = rng.choice(["controller", "step"])
    sig = rng.choice(SIGNALS)
    delay = rng.uniform(0.5, baseline["seconds"] * 0.9)
    jobs = rng.choice([1, 2])
    store = baseline["root"] / f"trial-{trial}"
    spec = baseline["spec_for"](store)
    # GIVEN a run killed at a random moment
    proc = start(spec, jobs)
    deadline = time.time() + delay
    victim = proc.pid
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if target == "step":
        steps = job_processes(proc.pid)
        deadline = time.time() + 20
        while not steps and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
            steps = job_processes(proc.pid)
        victim = steps[0] if steps else proc.pid
    signalled = proc.poll() is None
    if signalled:
        os.kill(victim, sig)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"trial {trial}: the run did not end after {sig.name} to the {target}")
    if signalled and victim == proc.pid:
        assert proc.returncode != 0, f"trial {trial}: the controller got {sig.name} and the run ended as a success"
    if proc.returncode == 0:  # a run that says it is done is done, whatever was signalled
        assert len(committed_steps(store)) == 6, f"trial {trial}: exit 0 with steps left"
    time.sleep(1.0)
    left = session_processes(proc.pid)
    assert not left, f"trial {trial} ({sig.name} to the {target} at {delay:.1f}s): left behind {left}"
    before = committed_steps(store)
    # WHEN it is run again
    again = start(spec)
    assert again.wait(timeout=900) == 0, again.stderr.read()
    # THEN every step is done, none that had finished was redone, and the results are the same
    after = committed_steps(store)
    assert len(after) == 6
    redone = [p for p, record in before.items() if after[p] != record]
    assert not redone, f"trial {trial}: {redone} computed again"
    assert outcome(store) == baseline["results"]
    assert not session_processes(again.pid)
    print(f"\ntrial {trial}: {sig.name} to the {target} at {delay:.1f}s (--jobs {jobs}), {len(before)}/6 steps "
          "done then, resumed losslessly")
