"""The controller's own process never loads torch, transformers, scikit-learn, SciPy or
matplotlib: plan, report, status, logs, cancel, and a whole run on the Kubernetes backend
(against a fake API that commits each Job's steps as it is created), each in a fresh
interpreter that then lists its modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

pytestmark = pytest.mark.unit

HEAVY = ("torch", "transformers", "sentence_transformers", "sib", "sklearn", "scipy", "matplotlib")

SCRIPT = textwrap.dedent('''
    import json, sys
    from controller import cli
    from controller.run.kube import commands
    from controller.run.kube.api import JobState

    class FakeApi:
        def __init__(self):
            self.created = []
        def check(self, namespace):
            pass
        def jobs(self, namespace, selector):
            return {n: JobState(n, {}, {}, 0, 1, 0, True, False) for n in self.created}
        def create_job(self, manifest):
            self.created.append(manifest["metadata"]["name"])
            kind = manifest["metadata"]["labels"]["cluster-tune.io/kind"]
            for sid in manifest["metadata"]["annotations"]["cluster-tune.io/steps"].split(","):
                commit(f"steps/{kind}/{sid}")
            return True
        def wait_for_change(self, namespace, selector, timeout_s):
            pass
        def delete_job(self, namespace, name):
            pass
        def pod_log_tail(self, namespace, name, lines=15):
            return ""
        def unscheduled(self, namespace, selector):
            return {}

    def commit(prefix):
        """What a job would write, minus the work: enough outputs for the report."""
        from jobs.contract.steps import StepSpec
        from jobs.contract.staging import read_split
        from jobs.storage import open_store
        store = open_store(STORE)
        step = StepSpec.from_json(store.read_bytes(f"{prefix}/step.json").decode())
        put = lambda name, value: store.write_bytes(f"{prefix}/{name}", json.dumps(value).encode())
        if step.kind == "cluster":
            n = len(read_split(store, step.inputs["dataset"], "train"))
            put("assignments.json", {"labels": [i % 4 for i in range(n)]})
            put("clusters.json", {"nmi_with_gold": 0.5})
        if step.kind in ("finetune", "classic"):
            put("sample.json", {"indices": list(range(step.params.budget))})
            put("metrics.json", {"accuracy": 0.5, "macro_f1": 0.5})
        store.write_bytes(f"{prefix}/log.txt", b"done\\n")
        store.write_bytes(f"{prefix}/_SUCCESS", b"{}")

    STORE, SPEC, COMMAND = sys.argv[1], sys.argv[2], sys.argv[3:]
    commands.kube_api = lambda kubeconfig, namespace: FakeApi()
    code = cli.main([*COMMAND[:1], SPEC, "--store", STORE, *COMMAND[1:]])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print(json.dumps({"code": code, "heavy": heavy}))
''')


def in_fresh_process(store: str, spec, *command: str) -> dict:
    script = f"HEAVY = {HEAVY!r}\n" + SCRIPT
    done = subprocess.run([sys.executable, "-c", script, store, str(spec), *command], cwd=REPO,
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_controller_commands_load_no_torch(write_spec, s3_env, tmp_path):
    # GIVEN a tiny spec and an S3 store (the Kubernetes backend's)
    spec = write_spec(settings=["bert", "clust", "nb"], repetitions=1)
    store = f"s3://{s3_env}/run"
    # WHEN every controller command runs, the whole spec on Kubernetes among them
    ran = in_fresh_process(store, spec, "run", "--backend", "kubernetes", "--poll", "0")
    # THEN each succeeds without importing torch, transformers or sIB
    assert ran == {"code": 0, "heavy": []}
    from jobs.storage import open_store

    steps = [k.split("/")[2] for k in open_store(store).list("steps") if k.endswith("/_SUCCESS")]
    cluster = next(s for s in steps if open_store(store).exists(f"steps/cluster/{s}/_SUCCESS"))
    for command in (["plan"], ["report"], ["status"], ["status", "--kubernetes"], ["logs", cluster],
                    ["cancel"]):
        assert in_fresh_process(store, spec, *command) == {"code": 0, "heavy": []}, command


def test_the_probe_would_see_torch(write_spec, s3_env):
    # the same probe, on a command that does load torch in-process, reports it
    script = "import sys, json; import jobs.lib.models; print(json.dumps(sorted(m for m in sys.modules if m == 'torch')))"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert json.loads(done.stdout) == ["torch"]


def test_a_closed_pipe_ends_plan_quietly(write_spec):
    # GIVEN a plan longer than a pipe holds (64 KiB) and a reader that stops after one line
    spec = write_spec(settings=["bert", "clust", "nb", "svm"], budgets=[16, 32], repetitions=150)
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "plan", str(spec)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    assert proc.stdout.readline().startswith(b"todo")
    proc.stdout.close()  # as `ctune plan SPEC | head -1` does
    err = proc.stderr.read().decode()
    # THEN it exits 0 with nothing on stderr (no BrokenPipeError traceback)
    assert proc.wait(timeout=120) == 0 and err == "", err
    full = subprocess.run([sys.executable, "-m", "controller.cli", "plan", str(spec)], cwd=REPO,
                          capture_output=True, env=dict(os.environ), timeout=120)
    assert len(full.stdout) > 1 << 16  # the case the test means: output beyond what the pipe buffers
