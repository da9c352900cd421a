"""The Dockerfiles are hadolint-clean and take their base image as a build argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.unit

HADOLINT = str(Path(sys.executable).with_name("hadolint"))
DOCKERFILES = sorted((REPO / "images").glob("*.Dockerfile"))


def test_dockerfiles_are_hadolint_clean():
    assert [p.name for p in DOCKERFILES] == ["controller.Dockerfile", "job.Dockerfile"]
    result = subprocess.run([HADOLINT, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    result = subprocess.run([HADOLINT, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3006" in result.stdout  # untagged base image


def test_base_image_is_a_build_argument():
    for path in DOCKERFILES:
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}", path.name
