"""Store faults through a proxy on 127.0.0.1 (``tests/s3_faults.py``): connection resets,
500/503 answers, streams cut short, slow responses, and the server gone for a while.

A run through a flaky store gives the same results as one through a sound store; an outage
shorter than ``CTUNE_STORE_OUTAGE_S`` is ridden out; a longer one ends the run with exit
code 3 (not 2, the bad-input code), and the next run resumes without loss.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from conftest import REPO
from s3_faults import FaultProxy, Faults

pytestmark = pytest.mark.faults


def spec_file(tmp_path, tiny_model, data_dir, store: str) -> str:
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps({
        "name": "tiny", "datasets": ["ag_news"], "model": tiny_model, "settings": ["bert", "clust"],
        "budgets": [16], "repetitions": 2, "clustering": {"n_clusters": 4, "n_init": 2, "max_iter": 5},
        "intertrain": {"batch_size": 32, "max_length": 32}, "finetune": {"epochs": 2, "batch_size": 8, "max_length": 32},
        "data_dir": str(data_dir), "store": store}))
    return str(path)


def ctune(*argv, endpoint: str, outage_s: float = 60, background: bool = False):
    import os

    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "CTUNE_STORE_OUTAGE_S": str(outage_s),
           "CTUNE_CACHE": f"/tmp/ctune-cache-{uuid.uuid4().hex[:8]}"}
    cmd = [sys.executable, "-m", "controller.cli", *argv]
    if background:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def outcome(bucket: str, prefix: str) -> list[tuple[str, str, str]]:
    import csv
    import io

    from jobs.storage import open_store

    text = open_store(f"s3://{bucket}/{prefix}").read_bytes("experiments/tiny/report/results.csv").decode()
    return sorted((r["setting"], r["repetition"], r["accuracy"]) for r in csv.DictReader(io.StringIO(text)))


def records(bucket: str, prefix: str) -> dict[str, bytes]:
    from jobs.storage import open_store

    store = open_store(f"s3://{bucket}/{prefix}")
    return {k: store.read_bytes(k) for k in store.list("steps") if k.endswith("/_SUCCESS")}


def logs(bucket: str, prefix: str) -> dict[str, bytes]:
    from jobs.storage import open_store

    store = open_store(f"s3://{bucket}/{prefix}")
    return {k: store.read_bytes(k) for k in store.list("steps") if k.endswith("/log.txt")}


@pytest.fixture(scope="module")
def bucket(s3):
    """One bucket for the module (the undisturbed run is made once), the AWS environment set."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in s3.env.items():
            env.setenv(key, value)
        name = f"faults-{uuid.uuid4().hex[:12]}"
        s3.client().create_bucket(Bucket=name)
        yield name


@pytest.fixture(scope="module")
def baseline(s3_server, bucket, tmp_path_factory, tiny_model):
    from conftest import shared_data, write_slice

    root = tmp_path_factory.mktemp("store-faults")
    (root / "data" / "ag_news").mkdir(parents=True)
    for split, n in (("train", 240), ("test", 60)):
        write_slice(shared_data() / "ag_news" / f"{split}.jsonl", root / "data" / "ag_news" / f"{split}.jsonl", n)
    spec = spec_file(root, tiny_model, root / "data", f"s3://{bucket}/direct")
    done = ctune("run", spec, endpoint=s3_server)
    assert done.returncode == 0, done.stderr
    return {"results": outcome(bucket, "direct"), "root": root}


def test_a_flaky_store_gives_the_same_results(baseline, s3_server, bucket, tiny_model):
    proxy = FaultProxy(s3_server, Faults(reset=0.04, error=0.06, cut=0.03, slow=0.05, seed=7))
    try:
        spec = spec_file(baseline["root"], tiny_model, baseline["root"] / "data", f"s3://{bucket}/flaky")
        done = ctune("run", spec, endpoint=proxy.url)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome(bucket, "flaky") == baseline["results"]
    injected = proxy.faults.counts
    print(f"\nfaults injected and survived: {injected}")
    assert sum(injected.values()) >= 10


def outage_run(s3_server, bucket, baseline, tiny_model, prefix: str, down_s: float, outage_s: float):
    """A run whose store goes away once a step is committed, for ``down_s`` seconds counted
    from the first request it refuses (or until the run ends).

    Counting from the first refusal, not from the switch, makes the outage the run meets
    as long as asked: a step computing through a timed outage could otherwise meet only its
    tail, which botocore's own retries absorb, and nothing would have been ridden out."""
    proxy = FaultProxy(s3_server, Faults())
    spec = spec_file(baseline["root"], tiny_model, baseline["root"] / "data", f"s3://{bucket}/{prefix}")
    proc = ctune("run", spec, endpoint=proxy.url, outage_s=outage_s, background=True)
    deadline = time.time() + 300
    while not records(bucket, prefix) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proxy.down = True
    while not proxy.faults.counts.get("down") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    until = time.time() + down_s
    while time.time() < until and proc.poll() is None:
        time.sleep(0.1)
    proxy.down = False
    _, err = proc.communicate(timeout=900)
    proxy.close()
    return proc.returncode, err, spec


def test_a_short_outage_is_ridden_out(baseline, s3_server, bucket, tiny_model):
    # 20 s of refusals outlast botocore's own retries (5 attempts, at most 1+2+4+8 s of backoff)
    code, err, _ = outage_run(s3_server, bucket, baseline, tiny_model, "short", down_s=20, outage_s=60)
    assert code == 0, err[-3000:]
    # whoever met the outage said so: the controller on stderr, or a step in its log
    said = err + "".join(text.decode(errors="replace") for text in logs(bucket, "short").values())
    assert "not answering" in said and "retrying for up to 60 s" in said
    assert outcome(bucket, "short") == baseline["results"]


def test_a_long_outage_ends_the_run_with_its_own_code_and_loses_nothing(baseline, s3_server, bucket, tiny_model):
    # a call meeting it exhausts botocore's retries within 15 s; the store layer's retries all
    # start inside its 4 s window and each ends within 15 s, so the run gives up by 34 s
    code, err, spec = outage_run(s3_server, bucket, baseline, tiny_model, "long", down_s=40, outage_s=4)
    assert code == 3, err[-3000:]
    assert "unreachable for more than 4 s" in err
    before = records(bucket, "long")
    again = ctune("run", spec, endpoint=s3_server)
    assert again.returncode == 0, again.stderr[-3000:]
    after = records(bucket, "long")
    assert all(after[k] == v for k, v in before.items()), "a finished step was computed again"
    assert outcome(bucket, "long") == baseline["results"]


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    """A SeaweedFS server of this test's own (the session's key pair), to kill and restart on
    its data; the in-process store reads go to it."""
    from seaweed import SeaweedServer

    server = SeaweedServer(tmp_path / "seaweed").start()
    server.create_bucket("outage")
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    yield server
    server.kill()


def _first_commit(proc, prefix: str, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while not records("outage", prefix) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and records("outage", prefix), "the run ended before a step was committed"


@pytest.mark.parametrize(("down_s", "outage_s", "code"), [(10, 120, 0), (40, 4, 3)])
def test_the_real_server_killed_mid_run_and_restarted(baseline, own_server, tiny_model, down_s, outage_s, code):
    # GIVEN a run on a real S3 server
    prefix = f"killed-{code}"
    spec = spec_file(baseline["root"], tiny_model, baseline["root"] / "data", f"s3://outage/{prefix}")
    proc = ctune("run", spec, endpoint=own_server.url, outage_s=outage_s, background=True)
    _first_commit(proc, prefix)
    # WHEN the server is killed once a step is committed, and started again on its data later
    own_server.kill()
    killed_at = time.time()
    time.sleep(down_s)
    own_server.wait_ports_free()
    own_server.start()
    print(f"\nserver down {time.time() - killed_at:.1f} s (killed, then restarted on its data)")
    _, err = proc.communicate(timeout=900)
    # THEN with a window longer than the outage the run rides it out; with a shorter one it ends
    # with exit 3, and a second run finishes without redoing a committed step
    assert proc.returncode == code, err[-3000:]
    said = err + "".join(text.decode(errors="replace") for text in logs("outage", prefix).values())
    assert "not answering" in said
    if code == 3:
        assert f"unreachable for more than {outage_s} s" in err
        before = records("outage", prefix)
        again = ctune("run", spec, endpoint=own_server.url)
        assert again.returncode == 0, again.stderr[-3000:]
        after = records("outage", prefix)
        assert all(after[k] == v for k, v in before.items()), "a finished step was computed again"
    assert outcome("outage", prefix) == baseline["results"]


def test_train_into_a_registry_through_a_flaky_store_promotes_each_version_once(s3_server, bucket, tiny_model,
                                                                                  data_dir, tmp_path):
    # GIVEN a registry on S3 behind the fault proxy: resets, 500/503 answers, and replies lost
    # after the write landed (a conditional PUT carried out, the client told nothing)
    from conftest import put_training_texts

    from jobs.storage import open_store

    direct = open_store(f"s3://{bucket}")
    name = f"flaky-{uuid.uuid4().hex[:6]}"
    _, unlabeled = put_training_texts(direct, data_dir, f"{name}/labeled.jsonl", f"{name}/corpus/part-000.jsonl",
                                      f"{name}/dev.jsonl", 100)
    proxy = FaultProxy(s3_server, Faults(reset=0.04, error=0.04, lost=0.04, seed=11, one_request_each=True,
                                         lose_puts_to="current.json"))
    registry = f"s3://{bucket}/{name}/models/news"
    train = ["train", f"s3://{bucket}/{name}/labeled.jsonl", "--corpus", f"s3://{bucket}/{name}/corpus/",
             "--dev", f"s3://{bucket}/{name}/dev.jsonl", "--out", registry, "--model", tiny_model,
             "--clusters", "4", "--store", str(tmp_path / "store"), "--tolerance", "100"]
    versions = []
    try:
        for round_ in range(3):
            if round_:  # new corpus texts: a new version
                direct.write_bytes(f"{name}/corpus/part-{round_:03d}.jsonl",
                                   ("\n".join(unlabeled[100 + 30 * round_:130 + 30 * round_]) + "\n").encode())
            # WHEN ctune train publishes through it
            done = ctune(*train, endpoint=proxy.url)
            assert done.returncode == 0, done.stderr[-3000:]
            # THEN the pointer is whole JSON, the new version promoted once, none twice
            pointer = json.loads(direct.read_bytes(f"{name}/models/news/current.json"))
            versions.append(pointer["current"])
            assert pointer["stack"] == versions and len(set(versions)) == round_ + 1
            assert [m["version"] for m in pointer["log"]] == versions
    finally:
        proxy.close()
    counts = proxy.faults.counts
    # every round's first write of the pointer landed and its reply was lost
    assert counts.get("lost PUT current.json", 0) >= 3 and counts.get("reset") and counts.get("error"), counts
