"""One claimant per step: claims on a folder and on S3, takeover after expiry or death, and
two controllers on one store computing every step once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import REPO

from jobs.contract import claims
from jobs.contract.errors import Claimed
from jobs.storage import open_store

pytestmark = pytest.mark.unit


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(tmp_path / "store")
    bucket = request.getfixturevalue("s3_env")
    return open_store(f"s3://{bucket}/claims")


def test_create_only_if_absent(store):
    assert store.create_bytes("a/b", b"1")
    assert not store.create_bytes("a/b", b"2")
    assert store.read_bytes("a/b") == b"1"


def test_one_claimant_then_takeover_after_expiry(store):
    first = claims.acquire(store, "steps/x", "host-a:1:a", ttl=0.5)
    assert first is not None and first.generation == 0
    assert claims.acquire(store, "steps/x", "host-b:2:b", ttl=0.5) is None  # live: refused
    assert claims.acquire(store, "steps/x", "host-a:1:a") == first  # the owner again: the same claim
    time.sleep(0.6)
    second = claims.acquire(store, "steps/x", "host-b:2:b", ttl=5)
    assert second is not None and second.generation == 1
    assert not claims.still_held(store, first) and claims.still_held(store, second)


def test_a_released_claim_is_taken_at_once(store):
    claim = claims.acquire(store, "steps/y", "host-a:1:a", ttl=300)
    claims.release(store, claim)
    assert claims.acquire(store, "steps/y", "host-b:2:b", ttl=300).generation == 1


def test_a_dead_local_owner_is_taken_over_before_expiry(tmp_path):
    store = open_store(tmp_path / "store")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    assert claims.acquire(store, "steps/z", f"{socket.gethostname()}:{dead.pid}:x", ttl=300) is not None
    assert claims.acquire(store, "steps/z", "other:1:y", ttl=300).generation == 1


def test_racing_claimants_get_one_generation_each(tmp_path):
    # GIVEN 8 processes that all want the same unclaimed step at once
    store_root = tmp_path / "store"
    script = ("import sys; from jobs.contract import claims; from jobs.storage import open_store;"
              "c = claims.acquire(open_store(sys.argv[1]), 'steps/r', sys.argv[2], ttl=300);"
              "print('won' if c else 'lost')")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store_root), f"h:{i}:{i}"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for i in range(8)]
    # THEN exactly one wins
    outcomes = [p.communicate()[0].strip() for p in procs]
    assert outcomes.count("won") == 1, outcomes


def test_a_heartbeat_that_cannot_renew_stops_the_writer(tmp_path):
    store = open_store(tmp_path / "store")
    claim = claims.acquire(store, "steps/h", "h:1:1", ttl=1.0)
    beat = claims.Heartbeat(store, claim, ttl=1.0)
    with beat:
        time.sleep(0.6)
        beat.check()  # renewed by now
        taken = claims.Claim("steps/h", claim.generation + 1, "other:2:2", time.time() + 60)
        assert store.create_bytes(taken.key, taken.to_bytes())
        time.sleep(0.6)
        with pytest.raises(Claimed, match="took the step over"):
            beat.check()
