"""Secrets stay secret, names stay names: a credential planted in the environment appears in
no object of the store (step.json, _SUCCESS, logs, plan.json, spec, report) nor in any output
or rendered manifest; no spec value reaches a shell; pods run hardened."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.pipeline

KEY_ID = "AKIAPLANTEDKEY0000001"
SECRET = "planted-secret-Zq8v1rT3"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A SeaweedFS server whose one key pair is the planted credential (it checks the key:
    a run that succeeds used it)."""
    from seaweed import SeaweedServer

    server = SeaweedServer(tmp_path_factory.mktemp("planted"), access_key=KEY_ID, secret_key=SECRET).start()
    server.create_bucket("planted")
    yield server
    server.kill()


def test_a_planted_secret_is_nowhere(write_spec, planted, monkeypatch, ctune):
    from jobs.storage import open_store

    for key, value in planted.env.items():
        monkeypatch.setenv(key, value)
    spec = write_spec(store="s3://planted/sec", repetitions=1)
    done = ctune("run", str(spec), env=planted.env)
    assert done.returncode == 0, done.stderr
    store = open_store("s3://planted/sec")
    keys = store.list("steps") + store.list("experiments") + store.list("datasets")
    assert any(k.endswith("/log.txt") for k in keys) and any(k.endswith("/step.json") for k in keys)
    leaked = [k for k in keys if any(s.encode() in store.read_bytes(k) for s in (SECRET, KEY_ID))]
    assert not leaked
    assert SECRET not in done.stdout + done.stderr and KEY_ID not in done.stdout + done.stderr
    # an endpoint with credentials in it is masked wherever ctune prints it
    masked = ctune("plan", str(spec), env={"AWS_ENDPOINT_URL": f"http://user:{SECRET}@127.0.0.1:9",
                                             "AWS_MAX_ATTEMPTS": "1"})
    assert masked.returncode == 2 and SECRET not in masked.stderr and "***@" in masked.stderr


def test_manifests_carry_secret_references_only_and_no_shell_interpolation(write_spec, planted, monkeypatch):
    from controller.plan.datasets import prepare_all, resolve_data_dir
    from controller.plan.graph import build_plan
    from controller.plan.packing import pack_units
    from controller.plan.spec import load_spec
    from controller.run.kube.config import kube_config
    from controller.run.kube.render import render_job

    for key, value in planted.env.items():
        monkeypatch.setenv(key, value)
    hostile = "x; rm -rf / #$(touch /tmp/pwned)`id`"
    path = write_spec(store="s3://planted/manifests", repetitions=1, settings=["bert", "clust"],
                      kubernetes={"image": f"img:1 {hostile}"})
    spec = load_spec(path)
    prepared = prepare_all(spec, resolve_data_dir(spec, None), str(path))
    plan = build_plan(spec, {n: p.prefix for n, p in prepared.items()}, {n: p.corpus_prefix for n, p in prepared.items()})
    for unit in pack_units(list(plan.steps.values()), 16):
        job = render_job(unit, spec.name, "s3://planted/manifests", kube_config(spec))
        text = yaml.safe_dump(job)
        assert SECRET not in text
        container = job["spec"]["template"]["spec"]["containers"][0]
        aws = [e for e in container["env"] if e["name"].startswith("AWS_")]
        assert aws and all("valueFrom" in e and "value" not in e for e in aws)
        # the only shell is a fixed prefix; every step URI and value is an argument after "--"
        command = container["command"]
        assert command[:2] == ["sh", "-c"] and "$" not in command[2].replace('"$@"', "")
        assert command[3] == "--" and not any(hostile in part for part in command)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert json.dumps(plan.to_json()).count(SECRET) == 0
