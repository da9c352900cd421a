"""The checks `make lint` runs can fail: complexity, import contracts; and torch has one source."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from tests.complexity import too_complex

pytestmark = pytest.mark.unit


def test_no_function_is_above_complexity_15():
    assert too_complex([str(REPO / "controller"), str(REPO / "jobs")], 15) == []


def test_the_complexity_check_flags_a_tangled_function(tmp_path):
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(16))
    (tmp_path / "tangled.py").write_text(f"def tangled(x):\n{branches}    return -1\n")
    assert too_complex([str(tmp_path)], 15) == [f"{tmp_path / 'tangled.py'}:1 tangled (17)"]


def test_the_import_contracts_catch_torch_in_the_controller(tmp_path):
    # GIVEN a copy of the packages where the controller imports a job module
    for part in ("controller", "jobs", "pyproject.toml"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    with open(tmp_path / "controller/report/plots.py", "a") as f:
        f.write("\nfrom jobs.lib import models  # noqa: E402\n")
    # AND the plan wing imports the command line above it, and a report module one beside it
    with open(tmp_path / "controller/plan/packing.py", "a") as f:
        f.write("\nfrom controller import cli  # noqa: E402\n")
    with open(tmp_path / "controller/report/cache.py", "a") as f:
        f.write("\nfrom controller.report import page  # noqa: E402\n")
    lint = str(Path(sys.executable).with_name("lint-imports"))
    # WHEN the contracts are checked there, THEN four are broken; in the repository, none
    broken = subprocess.run([lint, "--no-cache"], cwd=tmp_path, capture_output=True, text=True)
    assert broken.returncode != 0
    assert "the controller imports only jobs' contract, storage, data and serving BROKEN" in broken.stdout
    assert "no torch, transformers or sIB in the controller process BROKEN" in broken.stdout
    assert "controller.plan is not allowed to import controller.cli" in broken.stdout
    assert "No cycles are allowed in controller.report" in broken.stdout
    kept = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stdout


def test_jobs_has_no_module_outside_the_contracts():
    # the import contracts name the packages the controller may not import: a new top-level
    # module of jobs/ would escape them
    top = {p.stem for p in (REPO / "jobs").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top == {"__init__", "__main__", "contract", "storage", "data", "serving", "kinds", "lib", "objectives"}


def test_torch_is_pinned_in_one_place():
    # lock/torch.in is torch's one hand-written pin; constraints.txt, made from it by make lock,
    # carries it to the Makefile's and the job image's torch installs (-c constraints.txt)
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    pins = []
    for path in (REPO / name for name in listed):
        if path.is_file() and path.suffix != ".md" and path.name != Path(__file__).name:
            text = path.read_text(errors="ignore")
            pins += [f"{path.relative_to(REPO)}: {m}" for m in re.findall(r"(?:torch==|TORCH_VERSION=)[0-9][\w.+]*", text)]
    source = [line.strip() for line in (REPO / "lock/torch.in").read_text().splitlines() if line.startswith("torch==")]
    assert len(source) == 1, "lock/torch.in pins torch once"
    assert sorted(pins) == [f"constraints.txt: {source[0]}", f"lock/torch.in: {source[0]}"]
    assert "-c constraints.txt torch" in (REPO / "images/job.Dockerfile").read_text()
