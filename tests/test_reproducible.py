"""Results that reproduce: a tiny grid's outputs are pinned, and each step names its environment.

``tests/golden/outputs-tiny.json`` holds what the tiny spec computes under the lock: the
cluster assignments, a digest of the inter-trained weights, each fine-tune's predictions,
accuracy and final training loss. A change of code or of a locked version that moves any of them fails here until
the file is made again on purpose: ``CTUNE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest
tests/test_reproducible.py -k golden`` (then decide on ``CONTRACT_VERSION``:
docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from jobs.contract.environment import KEYS, installed_versions
from jobs.contract.ids import CONTRACT_VERSION

pytestmark = pytest.mark.pipeline

GOLDEN = REPO / "tests" / "golden" / "outputs-tiny.json"
UPDATE = os.environ.get("CTUNE_UPDATE_GOLDEN") == "1"
PINNED_MATH = {"CTUNE_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
"""torch's float sums the same whatever the machine's cores (and the xdist workers beside) and
its x86 vector unit (AVX2 kernels, also on an AVX-512 or AMX machine). numpy's and OpenBLAS's
kernels (the clustering's) still follow the CPU: on another CPU family the file may need making
again, on purpose, like after an upgrade."""
FINETUNE = {"epochs": 10, "batch_size": 8, "max_length": 32, "lr": 5e-3}
"""Long and fast enough that the tiny model's predictions are not one class."""


def weights_digest(folder: Path) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order (not the file's
    bytes: its header is the serializer's business)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def step_outputs(store: Path, prefix: str, record: dict) -> dict:
    folder = store / prefix
    if record["kind"] == "cluster":
        return {"assignments": json.loads((folder / "assignments.json").read_text())["labels"]}
    if record["kind"] == "intertrain":
        return {"weights_sha256": weights_digest(folder / "model")}
    predictions = [json.loads(line)["label"] for line in (folder / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"predictions": predictions, "accuracy": metrics["accuracy"], "final_loss": metrics["final_loss"]}


def grid_outputs(store: Path, committed) -> dict:
    steps = {f"{r['kind']} {r['label']}": step_outputs(store, prefix, r) for prefix, r in committed(store).items()}
    return {"contract_version": CONTRACT_VERSION, "steps": dict(sorted(steps.items()))}


def golden_text(outputs: dict) -> str:
    """One line per step, so that a diff of the file names the steps that moved."""
    steps = ",\n".join(f"  {json.dumps(name)}: {json.dumps(value, sort_keys=True)}" for name, value in outputs["steps"].items())
    return f'{{\n "contract_version": {outputs["contract_version"]},\n "steps": {{\n{steps}\n }}\n}}\n'


def _moved(golden: dict, now: dict) -> list[str]:
    names = sorted(set(golden["steps"]) | set(now["steps"]))
    return [f"{name}: {key}" for name in names for key in sorted(set(golden["steps"].get(name, {}))
                                                               | set(now["steps"].get(name, {})))
            if golden["steps"].get(name, {}).get(key) != now["steps"].get(name, {}).get(key)]


def test_a_tiny_grid_computes_the_golden_outputs(write_spec, tmp_path, ctune, committed):
    # GIVEN the tiny spec (tiny seeded BERT, 240 AG News texts), its math pinned
    spec = write_spec(finetune=FINETUNE, budgets=[48])
    # WHEN it runs
    run = ctune("run", str(spec), "--jobs", "2", env=PINNED_MATH)
    assert run.returncode == 0, run.stderr
    now = grid_outputs(tmp_path / "store", committed)
    assert len(now["steps"]) == 6 and all(now["steps"].values())
    if UPDATE:
        GOLDEN.write_text(golden_text(now))
    golden = json.loads(GOLDEN.read_text())
    # THEN every step's outputs are the golden file's, under the contract version it was made with
    assert _moved(golden, now) == [], "outputs moved (CTUNE_UPDATE_GOLDEN=1 makes the file again, on purpose)"
    assert golden["contract_version"] == CONTRACT_VERSION
    assert golden == now


def test_the_golden_comparison_names_what_moved():
    golden = {"contract_version": 1, "steps": {"cluster a": {"assignments": [0, 1]}, "finetune b": {"accuracy": 0.5}}}
    now = {"contract_version": 1, "steps": {"cluster a": {"assignments": [1, 0]}, "finetune b": {"accuracy": 0.5}}}
    assert _moved(golden, now) == ["cluster a: assignments"]


def _set_versions(store: Path, prefix: str, **versions: str) -> None:
    """Make a committed step look computed by another install, a day earlier."""
    marker = store / prefix / "_SUCCESS"
    record = json.loads(marker.read_text())
    record["versions"].update(versions)
    record["finished"] -= 86400
    marker.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def test_each_step_names_its_environment_and_a_mixed_grid_is_said_and_redone(write_spec, tmp_path, ctune, committed):
    spec = write_spec()
    store = tmp_path / "store"
    assert ctune("run", str(spec)).returncode == 0
    # THEN each record names the versions of what can change its outputs, and the device
    records = committed(store)
    here = installed_versions()
    for record in records.values():
        assert {k: v for k, v in record["versions"].items() if k in KEYS} == here
        assert record["device"] in ("cpu", "gpu") and record["device_name"]
    report = ctune("report", str(spec))
    assert "Mixed environments" not in report.stdout
    assert "all 6 committed steps under one environment: python" in ctune("verify", str(spec)).stdout

    # GIVEN the clustering computed under older transformers and tokenizers
    cluster = next(p for p, r in records.items() if r["kind"] == "cluster")
    _set_versions(store, cluster, transformers="0.0.1", tokenizers="0.0.2")
    (store / "experiments/tiny/report/cells.json").unlink()  # it read the record before the change
    # THEN the report, the page and verify say which step ran under which versions
    report = ctune("report", str(spec))
    assert report.returncode == 0, report.stderr
    newest = f"transformers {here['transformers']}, tokenizers {here['tokenizers']} (newest): 5 step(s)"
    assert "**Mixed environments:** the 6 committed steps were computed under 2 environments, which differ " \
           "in transformers, tokenizers" in report.stdout
    assert newest in report.stdout
    assert "* transformers 0.0.1, tokenizers 0.0.2 (older): 1 step(s): cluster ag_news" in report.stdout
    page = (store / "experiments/tiny/report/index.html").read_text()
    assert '<div class="mixed" role="alert">' in page and "transformers 0.0.1" in page
    verify = ctune("verify", str(spec))
    assert verify.returncode == 0 and "transformers 0.0.1, tokenizers 0.0.2 (older)" in verify.stdout

    # WHEN the run is asked to redo the older environment's steps
    before = committed(store)
    redo = ctune("run", str(spec), REDO := "--redo-older-env")
    assert redo.returncode == 0, redo.stderr
    # THEN the clustering and what was computed from it (inter-training, its 2 cells) are
    # computed again; the bert cells are kept; the report is of one environment again
    assert "1 step(s) of another environment than this run's (python" in redo.stderr, REDO
    assert "and 3 computed from them: computing them again" in redo.stderr
    after = committed(store)
    redone = sorted(after[p]["kind"] for p in after if after[p]["finished"] != before[p]["finished"])
    assert redone == ["cluster", "finetune", "finetune", "intertrain"]
    assert "Mixed environments" not in redo.stdout
    assert after[cluster]["versions"]["transformers"] == here["transformers"]
    assert "every committed step is of the environment this run computes in" in ctune("run", str(spec), REDO).stderr
