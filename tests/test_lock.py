"""The lock (lock/, constraints.txt) is whole, consistent, and what this environment runs on;
the package builds with no deprecation warning."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import tomllib
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit


def _compile_module():
    spec = importlib.util.spec_from_file_location("lock_compile", REPO / "lock" / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = _compile_module()


def locked(name: str) -> dict[str, tuple[str, set[str], Requirement]]:
    """Package -> (version, hashes, requirement line) of one lock file."""
    out = {}
    for package, block in LOCK.blocks((REPO / "lock" / name).read_text()):
        requirement = Requirement(block.splitlines()[0].rstrip(" \\"))
        specifier = str(requirement.specifier)
        assert specifier.startswith("==") and "," not in specifier, f"{name}: {package} is not pinned: {specifier}"
        out[package] = (specifier[2:], set(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block)), requirement)
    return out


def applies(requirement: Requirement, extras: tuple[str, ...] = ("",)) -> bool:
    return requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras)


def test_every_locked_package_is_pinned_with_hashes_and_torch_builds_are_left_out():
    for name in ("dev.txt", "jobs.txt", "controller.txt"):
        pins = locked(name)
        assert len(pins) > 20, name
        assert all(hashes for _, hashes, _ in pins.values()), name
        assert not [p for p in pins if LOCK.TORCH_BUILD.match(p)], name


def test_the_images_locks_are_parts_of_the_dev_lock():
    dev = locked("dev.txt")
    for name in ("jobs.txt", "controller.txt"):
        for package, (version, hashes, _) in locked(name).items():
            assert package in dev, f"{name}: {package} is not in lock/dev.txt"
            assert (version, hashes) == dev[package][:2], f"{name}: {package} differs from lock/dev.txt"


def test_constraints_are_the_dev_lock_without_hashes_and_torch_once():
    torch = [line for line in (REPO / "lock/torch.in").read_text().splitlines() if line.startswith("torch==")]
    assert len(torch) == 1
    expected = LOCK.pins(LOCK.HEADER + "".join(b for _, b in LOCK.blocks((REPO / "lock/dev.txt").read_text())),
                         torch[0] + "\n")
    assert (REPO / "constraints.txt").read_text() == expected, "constraints.txt is stale: run make lock"


def _closure(requirements: list[Requirement], pins: dict, extras: tuple[str, ...]) -> list[str]:
    """What the requirements need here that the pins do not satisfy (walking installed metadata)."""
    problems, seen, todo = [], set(), [(r, extras) for r in requirements]
    while todo:
        requirement, wanted = todo.pop()
        name = canonicalize_name(requirement.name)
        if not applies(requirement, wanted) or (name, wanted) in seen or LOCK.TORCH_BUILD.match(name):
            continue
        seen.add((name, wanted))
        if name == "cluster-tune":
            continue
        if name not in pins:
            problems.append(f"{requirement} is not locked")
            continue
        if not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{requirement}: locked {pins[name][0]}")
        sub = tuple(requirement.extras) or ("",)
        todo += [(Requirement(r), sub) for r in metadata.requires(name) or []]
    return problems


def test_each_lock_holds_what_pyproject_asks_for_with_every_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = [Requirement(r) for r in project["dependencies"]]
    extra = project["optional-dependencies"]
    everything = base + [Requirement(r) for group in ("jobs", "test", "lint", "bench") for r in extra[group]]
    assert _closure(everything, locked("dev.txt"), ("",)) == []
    assert _closure(base + [Requirement(r) for r in extra["jobs"]], locked("jobs.txt"), ("",)) == []
    assert _closure(base, locked("controller.txt"), ("",)) == []


def test_the_closure_check_finds_a_missing_and_a_wrong_pin():
    pins = locked("controller.txt")
    del pins["pyyaml"]
    pins["boto3"] = ("1.0.0", set(), pins["boto3"][2])
    problems = _closure([Requirement("PyYAML>=6"), Requirement("boto3>=1.28")], pins, ("",))
    assert sorted(problems) == ["PyYAML>=6 is not locked", "boto3>=1.28: locked 1.0.0"]


def test_this_environment_is_the_lock():
    # make install puts exactly the lock in .venv; a package moved by hand shows here
    moved = [f"{p}: {metadata.version(p)} installed, {v} locked" for p, (v, _, r) in locked("dev.txt").items()
             if applies(r) and metadata.version(p) != v]
    assert moved == []
    assert LOCK.extras() == [], "installed here, not locked (make install removes them)"
    torch = (REPO / "constraints.txt").read_text().split("torch==", 1)[1].split()[0]
    assert metadata.version("torch").split("+")[0] == torch


def test_installs_go_through_the_lock():
    make = (REPO / "Makefile").read_text()
    assert "--require-hashes --no-deps -r lock/dev.txt" in make and "-c constraints.txt torch" in make
    job = (REPO / "images/job.Dockerfile").read_text()
    assert "-c constraints.txt torch" in job and "--require-hashes --no-deps -r lock/jobs.txt" in job
    controller = (REPO / "images/controller.Dockerfile").read_text()
    assert "--require-hashes --no-deps -r lock/controller.txt" in controller and "torch" not in controller.split(
        "WORKDIR /opt/cluster-tune", 1)[1].split("USER", 1)[0]


def test_the_package_builds_without_a_deprecation_warning(tmp_path):
    for part in ("pyproject.toml", "README.md", "LICENSE", "controller", "jobs"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    (tmp_path / "dist").mkdir()
    build = subprocess.run([sys.executable, "-W", "error", "-c",
                            "import setuptools.build_meta as b, sys; print(b.build_wheel(sys.argv[1]))",
                            str(tmp_path / "dist")], cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "Deprecat" not in build.stdout + build.stderr
    wheel = tmp_path / "dist" / build.stdout.split()[-1]
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        assert "License-Expression: Apache-2.0" in meta and any(n.endswith("licenses/LICENSE") for n in z.namelist())
