"""The images, run as a cluster runs them: every step kind in the job image with a read-only
root, uid 1000, no capabilities, no new privileges and ``/scratch`` the only writable place,
against S3 on this machine; the controller image's ``ctune``.

The images are built by ``make images-local`` (``make test`` builds them when absent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.container

JOB_IMAGE = os.environ.get("CTUNE_TEST_JOB_IMAGE", "cluster-tune-job:test")
CONTROLLER_IMAGE = os.environ.get("CTUNE_TEST_CONTROLLER_IMAGE", "cluster-tune-controller:test")
HARDENED = ["--read-only", "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--network", "host"]


def podman(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "images/containers.conf"))}
    return subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def images():
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (make images-local installs it)")
    missing = [i for i in (JOB_IMAGE, CONTROLLER_IMAGE) if podman("image", "exists", i).returncode != 0]
    if missing:
        pytest.fail(f"images not built: {', '.join(missing)} (make images-local VERSION=test)")


def aws_env() -> list[str]:
    return [a for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
            for a in ("-e", f"{key}={os.environ[key]}")]


def run_step(step, store_root: str, scratch: Path) -> subprocess.CompletedProcess:
    """One step in the job image, hardened as the rendered Job runs it."""
    from jobs.contract.steps import step_uri

    for sub in ("tmp", "cache", "hf"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    os.chown(scratch, 1000, 1000)
    for sub in scratch.iterdir():
        os.chown(sub, 1000, 1000)
    env = ["-e", "HOME=/scratch", "-e", "TMPDIR=/scratch/tmp", "-e", "CTUNE_CACHE=/scratch/cache",
           "-e", "HF_HOME=/scratch/hf", "-e", "CTUNE_LOG_TO_STORE=1", *aws_env()]
    return podman("run", "--rm", *HARDENED, "-v", f"{scratch}:/scratch", *env, JOB_IMAGE, step.kind, "--step",
                  step_uri(store_root, step.prefix))


def every_kind(write_spec, s3_model, bucket: str):
    """A tiny grid's steps covering every kind but fit, evaluate and drift, then ctune train's fit,
    a registry's evaluate and a round's drift: in order."""
    from controller.plan.datasets import prepare_all, resolve_data_dir, stage_prepared
    from controller.plan.graph import build_plan, evaluate_step
    from controller.plan.spec import load_spec
    from controller.practice.rounds import drift_step
    from controller.practice.training import TrainRequest, training_plan
    from controller.run.backends.base import write_step_files
    from jobs.contract.params import DriftParams
    from jobs.contract.staging import LABELED, TRAIN, corpus, stage, staged_dataset
    from jobs.data import Examples
    from jobs.storage import open_store

    spec_path = write_spec(model=s3_model, store=f"s3://{bucket}/c",
                           settings=["bert", "clust", "mlm", "probe", "nb", "clust+setfit"],
                           repetitions=1, analysis={"enabled": True, "max_texts": 30, "permutations": 20},
                           mlm={"epochs": 1, "replication": 1, "batch_size": 32, "max_length": 32},
                           setfit={"num_iterations": 2, "batch_size": 8, "max_length": 32})
    spec = load_spec(spec_path)
    store = open_store(str(spec.store))
    prepared = prepare_all(spec, resolve_data_dir(spec, None), str(spec_path))
    for p in prepared.values():
        stage_prepared(store, p)
    plan = build_plan(spec, {n: p.prefix for n, p in prepared.items()})
    labeled = Examples(("stocks fell", "the team won", "rates rose", "a late goal"), ("b", "s", "b", "s"))
    texts = corpus(labeled, None)
    dataset = staged_dataset("train", {TRAIN: texts, LABELED: labeled}, ["b", "s"])
    stage(store, dataset)
    fits = [training_plan(TrainRequest(labeled=Path("l"), out=Path("o"), model=s3_model, protocol="paper"), setting,
                          dataset.prefix) for setting in ("bert", "probe")]  # a fine-tuned head and a probe
    steps = [*plan.steps.values(), *(s for fit in fits for s in fit.steps.values())]
    fitted = next(s for s in steps if s.kind == "fit")  # scored on a dev set, as a registry's gate does
    steps.append(evaluate_step(f"{store.root}/{fitted.prefix}/model", dataset.prefix, "evaluate"))
    # a retraining round's report on the grid's clustered corpus, the same model standing in for the one in use
    clust = next(s for s in plan.steps.values() if s.kind == "cluster")
    steps.append(drift_step(DriftParams(current_version="v0", current_model=f"{store.root}/{fitted.prefix}/model",
                                        batch=5, pool=20), clust.inputs["dataset"], clust.prefix, fitted.prefix, None))
    write_step_files(store, steps)
    return store, steps


def test_every_step_kind_runs_in_the_hardened_job_image(images, write_spec, s3_model, s3_env, tmp_path):
    from jobs.contract.steps import is_done

    store, steps = every_kind(write_spec, s3_model, s3_env)
    assert {s.kind for s in steps} == {"cluster", "intertrain", "finetune", "embed", "classic", "analyze", "fit",
                                       "setfit", "evaluate", "drift"}
    seconds: dict[str, list[float]] = {}
    for step in steps:  # in dependency order
        t0 = time.time()
        done = run_step(step, store.root, tmp_path / f"scratch-{step.id}")
        seconds.setdefault(step.kind, []).append(time.time() - t0)
        assert done.returncode == 0, f"{step.kind} {step.label}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        assert is_done(store, step.prefix), step.label
        log = store.read_bytes(f"{step.prefix}/log.txt").decode()
        assert f"done {step.kind} {step.id}" in log
    print("\nseconds per step in the job image: " + ", ".join(
        f"{k} {sum(v) / len(v):.1f}" for k, v in sorted(seconds.items())))


def test_the_image_root_is_read_only_and_the_user_unprivileged(images, tmp_path):
    probe = ("import os, sys; open('/scratch/ok', 'w').write('1');\n"
             "try:\n    open('/opt/cluster-tune/x', 'w')\nexcept OSError as e:\n    print('root:', e.errno)\n"
             "print('uid:', os.getuid(), 'caps:', open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    tmp_path.chmod(0o777)
    done = podman("run", "--rm", *HARDENED, "-v", f"{tmp_path}:/scratch", "--entrypoint", "python", JOB_IMAGE,
                  "-c", probe)
    assert done.returncode == 0, done.stderr
    assert "root: 30" in done.stdout  # EROFS
    assert "uid: 1000" in done.stdout and "caps: 0000000000000000" in done.stdout
    assert (tmp_path / "ok").read_text() == "1"


def test_controller_image_has_no_torch_nor_pip_and_starts_fast(images):
    t0 = time.time()
    helped = podman("run", "--rm", *HARDENED, CONTROLLER_IMAGE, "--help")
    seconds = time.time() - t0
    assert helped.returncode == 0 and "Cluster & Tune experiments" in helped.stdout
    absent = ("torch", "transformers", "sib", "sklearn", "scipy", "matplotlib", "pip")
    found = podman("run", "--rm", "--entrypoint", "python", CONTROLLER_IMAGE, "-c",
                   f"import importlib.util as u, json; print(json.dumps([m for m in {absent!r} if u.find_spec(m)]))")
    assert json.loads(found.stdout) == []
    # it scores texts with a version's ONNX graph: onnxruntime and tokenizers are in
    runs = podman("run", "--rm", "--entrypoint", "python", CONTROLLER_IMAGE, "-c",
                  "import onnxruntime, tokenizers, jobs.serving; print(onnxruntime.get_available_providers())")
    assert runs.returncode == 0 and "CPUExecutionProvider" in runs.stdout, runs.stderr
    size = podman("image", "inspect", CONTROLLER_IMAGE, "--format", "{{.Size}}").stdout.strip()
    assert int(size) < 400e6, f"the controller image is {int(size) / 1e6:.0f} MB: over its 400 MB bar"
    labels = json.loads(podman("image", "inspect", CONTROLLER_IMAGE, "--format", "{{json .Labels}}").stdout)
    assert {"org.opencontainers.image.source", "org.opencontainers.image.version",
            "org.opencontainers.image.revision"} <= set(labels)
    print(f"\ncontroller image: {int(size) / 1e6:.0f} MB, `ctune --help` in {seconds:.2f} s with the container's start")
