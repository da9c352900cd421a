"""Shared fixtures: a tiny random BERT, slices of the real data, S3 servers (moto, SeaweedFS), the CLI.

Every test belongs to exactly one tier (``pytestmark = pytest.mark.<tier>`` in its file):
``unit`` (in-process, seconds), ``pipeline`` (the real CLI and job processes), ``kube``
(a real API server), ``container`` (the images, run with podman). ``make test`` runs them
all, ``make test-unit`` the first.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.data import default_data_dir

REPO = Path(__file__).resolve().parents[1]
TIERS = ("unit", "pipeline", "kube", "container", "faults")


def pytest_collection_modifyitems(config, items):
    wrong = [f"{item.nodeid}: {tiers or 'no tier'}" for item in items
             if len(tiers := [m.name for m in item.iter_markers() if m.name in TIERS]) != 1]
    if wrong:
        raise pytest.UsageError(f"each test needs exactly one tier marker ({', '.join(TIERS)}):\n  "
                                + "\n  ".join(wrong))


def run_ctune(*argv: str, env: dict | None = None, kubeconfig: Path | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    """``ctune`` as a user runs it: a process of its own, from the repository."""
    extra = {**(env or {}), **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {})}
    return subprocess.run([sys.executable, "-m", "controller.cli", *argv], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **extra}, timeout=900, **kwargs)


def start_ctune(*argv: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """``ctune`` started in the background (to be killed mid-run)."""
    return subprocess.Popen([sys.executable, "-m", "controller.cli", *argv], cwd=REPO,
                            env={**os.environ, **(env or {})}, **kwargs)


def committed_steps(store_root: Path) -> dict[str, dict]:
    """Every ``_SUCCESS`` record of a local store, by step prefix."""
    return {str(p.parent.relative_to(store_root)): json.loads(p.read_text())
            for p in store_root.glob("steps/*/*/_SUCCESS")}


def read_results(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def repo() -> Path:
    """The repository's root (what ``ctune`` runs from)."""
    return REPO


@pytest.fixture
def ctune():
    """Run ``ctune ARGS...``; returns the completed process (stdout, stderr, returncode)."""
    return run_ctune


@pytest.fixture
def ctune_background():
    return start_ctune


@pytest.fixture
def committed():
    return committed_steps


@pytest.fixture
def results():
    """Read a report's results.csv into rows."""
    return read_results


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer random BERT with MiniLM's real tokenizer, saved as a local folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from jobs.lib.models import resolve_model

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_onnx_classifier(tiny_model: str, folder: Path, seed: int = 3, labels: tuple[str, ...] = ("ham", "spam"),
                         int8: bool = True) -> Path:
    """A tiny random sequence classifier (``folder/model``) and its ONNX folder
    (``folder/onnx``), as a version's export step writes it; returns the ONNX folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from jobs.lib.onnx_export import export, quantize

    model, out = folder / "model", folder / "onnx"
    config = BertConfig.from_pretrained(tiny_model, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={n: i for i, n in enumerate(labels)})
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(model)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(model)
    export(model, out)
    if int8:
        quantize(out)
    return out


def shared_data() -> Path:
    found = default_data_dir()
    if found is None or not (found / "ag_news").is_dir():
        pytest.fail("the shared datasets (../shared/data) are needed by the tests; set CTUNE_DATA_DIR")
    return found


def write_slice(src: Path, dst: Path, n: int) -> None:
    lines = src.read_text(encoding="utf-8").splitlines()[:n]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def put_training_texts(bucket, data_dir: Path, labeled_key: str, corpus_key: str, dev_key: str,
                       corpus_n: int) -> tuple[list[str], list[str]]:
    """What ``ctune train`` into a registry reads, written to ``bucket`` from ``data_dir``'s AG
    News: the first 40 train texts labeled, the next ``corpus_n`` unlabeled, the test split as
    the dev set. Returns the labeled lines and every unlabeled one (a test adds more later)."""
    lines = (data_dir / "ag_news" / "train.jsonl").read_text().splitlines()
    unlabeled = [json.dumps({"text": json.loads(x)["text"]}) for x in lines[40:]]
    bucket.write_bytes(labeled_key, ("\n".join(lines[:40]) + "\n").encode())
    bucket.write_bytes(corpus_key, ("\n".join(unlabeled[:corpus_n]) + "\n").encode())
    bucket.write_bytes(dev_key, (data_dir / "ag_news" / "test.jsonl").read_bytes())
    return lines[:40], unlabeled


def check_pointer_moves_only_from_what_was_read(uri: str) -> None:
    """A registry's pointer on S3 moves only from the ETag its writer read (``If-None-Match: *``
    for the first write, ``If-Match`` after): the moto and the SeaweedFS tiers both run this."""
    from controller.models.registry import Registry

    registry = Registry(uri)
    seen = registry.pointer()
    assert registry.move(seen, "promote", "v1", "first")
    assert not registry.move(seen, "promote", "v2", "stale read")  # If-None-Match: * refused
    now = registry.pointer()
    assert registry.move(now, "promote", "v2", "second")
    assert not registry.move(now, "rollback", "v2", "stale read")  # If-Match on the old ETag refused
    assert not registry.move(now, "promote", "v3", "stale read")
    assert registry.pointer().stack == ("v1", "v2") and len(registry.pointer().log) == 2


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data dir with a small slice of the real ag_news: 240 train, 60 test texts."""
    root = tmp_path / "data"
    (root / "ag_news").mkdir(parents=True)
    src = shared_data() / "ag_news"
    write_slice(src / "train.jsonl", root / "ag_news" / "train.jsonl", 240)
    write_slice(src / "test.jsonl", root / "ag_news" / "test.jsonl", 60)
    return root


@pytest.fixture
def write_spec(tmp_path, data_dir, tiny_model):
    """Write a tiny spec (tiny model, few clusters, short training) with overrides."""

    def write(**overrides) -> Path:
        spec = {
            "name": "tiny",
            "datasets": ["ag_news"],
            "model": tiny_model,
            "settings": ["bert", "clust"],
            "budgets": [16],
            "repetitions": 2,
            "clustering": {"n_clusters": 4, "n_init": 2, "max_iter": 5},
            "intertrain": {"batch_size": 32, "max_length": 32},
            "finetune": {"epochs": 2, "batch_size": 8, "max_length": 32},
            "data_dir": str(data_dir),
            "store": str(tmp_path / "store"),
        }
        spec.update(overrides)
        path = tmp_path / "spec.yaml"
        path.write_text(json.dumps(spec))  # JSON is YAML
        return path

    return write


@dataclass(frozen=True)
class S3Endpoint:
    """An S3 server the tests talk to, and the key pair it takes."""

    url: str
    access_key: str
    secret_key: str

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        """A client with this server's key pair (boto3's default session keeps the first pair it
        read, and a worker meets moto and SeaweedFS in turn)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 server on a free loopback port, in a thread: fast, takes any key, keeps
    nothing when stopped. The unit tier's."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Endpoint(f"http://{host}:{port}", "test", "test")
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real S3 server (SeaweedFS, ``tests/seaweed.py``) for the session's worker: the
    pipeline, fault, container and Kubernetes tiers'."""
    from seaweed import SeaweedServer

    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def s3(request) -> S3Endpoint:
    """The S3 server of the module's tier: moto for unit tests, SeaweedFS for the others."""
    if request.node.get_closest_marker("unit") is not None:
        return request.getfixturevalue("moto_s3")
    server = request.getfixturevalue("seaweed")
    return S3Endpoint(server.url, server.access_key, server.secret_key)


@pytest.fixture(scope="module")
def s3_server(s3) -> str:
    """The S3 server's endpoint URL."""
    return s3.url


@pytest.fixture
def s3_env(s3, monkeypatch):
    """AWS environment pointing at the tier's S3 server, with a fresh bucket; yields its name."""
    import uuid

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    monkeypatch.setenv("CTUNE_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"ctune-cache-{bucket}"))
    yield bucket
    shutil.rmtree(os.environ["CTUNE_CACHE"], ignore_errors=True)


@pytest.fixture
def s3_model(tiny_model, s3_env):
    """The tiny model uploaded to the bucket: pods get models from the store, not from disk."""
    from jobs.storage import open_store

    store = open_store(f"s3://{s3_env}")
    for path in Path(tiny_model).rglob("*"):
        if path.is_file():
            store.upload_file(path, f"models/tiny/{path.relative_to(tiny_model).as_posix()}")
    return f"s3://{s3_env}/models/tiny"
