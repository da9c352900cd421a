"""The storage contract, on a local folder and on a real S3 HTTP API (moto's server)."""

from __future__ import annotations

import pytest

from jobs.storage import LocalStore, S3Store, StoreError, open_store

pytestmark = pytest.mark.unit


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "root"))
    bucket = request.getfixturevalue("s3_env")
    return open_store(f"s3://{bucket}/some/prefix")


def test_open_store_picks_the_backend(tmp_path, s3_env):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"s3://{s3_env}/p"), S3Store)
    with pytest.raises(StoreError, match="unsupported store URI"):
        open_store("ftp://host/x")


def test_write_read_exists_list_delete(store):
    # GIVEN an empty store
    store.check()
    assert not store.exists("steps/a/1/x.json")
    # WHEN objects are written
    store.write_bytes("steps/a/1/x.json", b"one")
    store.write_bytes("steps/a/1/sub/y.bin", b"two")
    store.write_bytes("steps/a/2/z", b"three")
    # THEN they read back, list by prefix, and delete by prefix
    assert store.read_bytes("steps/a/1/x.json") == b"one"
    assert store.exists("steps/a/1/sub/y.bin")
    assert store.list("steps/a/1") == ["steps/a/1/sub/y.bin", "steps/a/1/x.json"]
    store.write_bytes("steps/a/1/x.json", b"replaced")
    assert store.read_bytes("steps/a/1/x.json") == b"replaced"
    store.delete_prefix("steps/a/1")
    assert store.list("steps/a/1") == []
    assert store.exists("steps/a/2/z")


def test_missing_key_is_a_clear_error(store):
    with pytest.raises(StoreError, match="missing in store: nope/x"):
        store.read_bytes("nope/x")


def test_fetch_dir_and_upload(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00" * 1000)
    store.upload_file(src, "m/model/weights.bin")
    store.write_bytes("m/model/config.json", b"{}")
    local = store.fetch_dir("m/model")
    assert (local / "weights.bin").read_bytes() == b"\x00" * 1000
    assert (local / "config.json").read_bytes() == b"{}"
    with pytest.raises(StoreError, match="missing in store"):
        store.fetch_dir("m/absent")


def test_keys_cannot_escape_the_root(store):
    with pytest.raises(StoreError, match="invalid store key"):
        store.write_bytes("../outside", b"x")


def test_unreachable_s3_store_says_so(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    store = open_store("s3://bucket/prefix")
    with pytest.raises(StoreError, match="cannot reach store s3://bucket/prefix"):
        store.check()


def test_missing_bucket_is_refused(s3_env):
    store = open_store("s3://no-such-bucket-here/p")
    with pytest.raises(StoreError, match="bucket no-such-bucket-here does not exist"):
        store.check()


def test_delete_removes_one_object_and_tolerates_none(store):
    store.write_bytes("experiments/x/_CANCELLED", b"1")
    store.write_bytes("experiments/x/_CANCELLED_not", b"2")
    store.delete("experiments/x/_CANCELLED")
    store.delete("experiments/x/_CANCELLED")  # again: nothing there is fine
    assert not store.exists("experiments/x/_CANCELLED") and store.exists("experiments/x/_CANCELLED_not")
