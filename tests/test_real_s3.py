"""Against a real S3 server (SeaweedFS, ``tests/seaweed.py``): wrong credentials and a missing
bucket are one line and exit 2 with the secret never printed, and the claims that keep two
controllers from computing a step twice hold on its conditional writes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import REPO

from jobs.contract import claims
from jobs.storage import open_store

pytestmark = pytest.mark.pipeline


@pytest.fixture
def store(s3_env, seaweed):
    return open_store(f"s3://{s3_env}/claims")


@pytest.mark.parametrize(("case", "fragment"), [
    ("wrong key", "refused the credentials of AWS_ACCESS_KEY_ID 'AKIAWRONGKEY0000'"),
    ("wrong secret", "the secret key does not match the access key"),
    ("missing bucket", "bucket no-such-bucket-here does not exist"),
])
def test_wrong_credentials_and_a_missing_bucket_are_one_line(case, fragment, write_spec, s3_env, seaweed, ctune):
    # GIVEN a spec on the real server, and the credentials or the bucket wrong
    bucket = "no-such-bucket-here" if case == "missing bucket" else s3_env
    spec = write_spec(store=f"s3://{bucket}/runs", repetitions=1)
    env = dict(seaweed.env)
    if case == "wrong key":
        env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGKEY0000"
    if case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "a-wrong-secret-Xy7"
    # WHEN a run starts
    for command in ("plan", "run"):
        done = ctune(command, str(spec), env=env)
        # THEN one error line naming the problem, exit 2, no secret, and nothing in the store
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        assert seaweed.secret_key not in done.stderr + done.stdout
        assert env["AWS_SECRET_ACCESS_KEY"] not in done.stderr + done.stdout
    if case != "missing bucket":
        assert seaweed.client().list_objects_v2(Bucket=s3_env).get("KeyCount") == 0  # nothing was written


def test_create_only_if_absent_on_a_real_server(store):
    assert store.create_bytes("a/b", b"1")
    assert not store.create_bytes("a/b", b"2")
    assert store.read_bytes("a/b") == b"1"


def test_one_claimant_then_takeover_after_expiry_on_a_real_server(store):
    first = claims.acquire(store, "steps/x", "host-a:1:a", ttl=0.5)
    assert first is not None and first.generation == 0
    assert claims.acquire(store, "steps/x", "host-b:2:b", ttl=0.5) is None  # live: refused
    time.sleep(0.6)
    second = claims.acquire(store, "steps/x", "host-b:2:b", ttl=5)
    assert second is not None and second.generation == 1
    assert not claims.still_held(store, first) and claims.still_held(store, second)
    claims.release(store, second)
    assert claims.acquire(store, "steps/x", "host-c:3:c", ttl=5).generation == 2


def test_racing_claimants_on_a_real_server_get_one_generation_each(s3_env, seaweed):
    # GIVEN 6 processes that all want the same unclaimed step at once, on the real server
    root = f"s3://{s3_env}/race"
    script = ("import sys; from jobs.contract import claims; from jobs.storage import open_store;"
              "c = claims.acquire(open_store(sys.argv[1]), 'steps/r', sys.argv[2], ttl=300);"
              "print('won' if c else 'lost')")
    import os

    env = {**os.environ, **seaweed.env}
    procs = [subprocess.Popen([sys.executable, "-c", script, root, f"h:{i}:{i}"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    # THEN exactly one wins
    assert [o for o, _ in outcomes].count("won\n") == 1, outcomes


def test_the_registry_pointer_moves_only_from_what_was_read_on_a_real_server(s3_env, seaweed):
    from conftest import check_pointer_moves_only_from_what_was_read

    check_pointer_moves_only_from_what_was_read(f"s3://{s3_env}/models/news")


def test_racing_processes_move_the_pointer_each_from_what_it_read_on_a_real_server(s3_env, seaweed):
    # GIVEN 6 processes that each promote their own version at once, reading again when refused
    root = f"s3://{s3_env}/models/race"
    script = ("import sys, time\n"
              "from controller.models.registry import Registry\n"
              "r = Registry(sys.argv[1]); r.store.check(); tries = 0\n"
              "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all read at once\n"
              "while True:\n"
              "    tries += 1\n"
              "    if r.move(r.pointer(), 'promote', sys.argv[2], 'race'):\n"
              "        print(tries); break\n")
    import os

    env = {**os.environ, **seaweed.env}
    start = str(time.time() + 8)  # after every interpreter has started and imported
    procs = [subprocess.Popen([sys.executable, "-c", script, root, f"v{i}", start], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outcomes
    from controller.models.registry import Registry

    pointer = Registry(root).pointer()
    # THEN every move is there once, each made from the pointer its writer read (no lost update)
    assert sorted(pointer.stack) == [f"v{i}" for i in range(6)] and len(set(pointer.stack)) == 6
    assert [m["version"] for m in pointer.log] == list(pointer.stack)
    assert [m["current"] for m in pointer.log] == list(pointer.stack)
    assert sum(int(o) for o, _ in outcomes) > 6, "no process was ever refused: the race did not happen"
