"""The bad-input catalogue: every case through the real ``ctune``, in its own process.

Each must exit 2, print one ``error:`` line per problem on stderr and no traceback, name the
input (file, line, key path or option), leak no credential, and leave nothing in the store
marked done. A case is (id, command-line maker, a fragment its error line must hold).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.pipeline

SECRET = "hunter2-do-not-print"


class Case:
    def __init__(self, tmp: Path, data: Path, model: str):
        self.tmp, self.data, self.model = tmp, data, model
        self.store = tmp / "store"

    def base(self, **overrides) -> dict:
        spec = {"name": "bad", "datasets": ["ag_news"], "model": self.model, "settings": ["bert", "clust"],
                "budgets": [16], "repetitions": 1, "clustering": {"n_clusters": 4, "n_init": 1, "max_iter": 3},
                "intertrain": {"batch_size": 32, "max_length": 32},
                "finetune": {"epochs": 1, "batch_size": 8, "max_length": 32},
                "data_dir": str(self.data), "store": str(self.store)}
        spec.update(overrides)
        return spec

    def spec(self, text: str | bytes | None = None, file: str = "spec.yaml", **overrides) -> str:
        path = self.tmp / file
        if text is None:
            text = json.dumps(self.base(**overrides))
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return str(path)

    def dataset(self, name: str, train: list | str, test: list | None = None, ext: str = "jsonl") -> str:
        """A dataset folder ``name`` beside ag_news; ``train`` as rows or raw text."""
        folder = self.data / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = [json.loads(line) for line in (self.data / "ag_news" / "test.jsonl").read_text().splitlines()]
        raw = train if isinstance(train, str) else "".join(json.dumps(r) + "\n" for r in train)
        (folder / f"train.{ext}").write_text(raw, encoding="utf-8")
        (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (test or rows)))
        return self.spec(datasets=[name])

    def train_rows(self) -> list[dict]:
        return [json.loads(line) for line in (self.data / "ag_news" / "train.jsonl").read_text().splitlines()]

    def model_copy(self, name: str, keep_weights: bool = True) -> Path:
        folder = self.tmp / name
        shutil.copytree(self.model, folder)
        if not keep_weights:
            (folder / "model.safetensors").unlink()
        return folder


def _truncated(c: Case) -> list[str]:
    folder = c.model_copy("cut")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50_000])
    return ["run", c.spec(model=str(folder))]


def _without(c: Case, *names: str) -> Path:
    folder = c.model_copy("no-tokenizer")
    for name in names:
        (folder / name).unlink(missing_ok=True)
    return folder


def _latin1(c: Case) -> list[str]:
    spec = c.dataset("latin", "")
    (c.data / "latin" / "train.jsonl").write_bytes(b'{"text": "caf\xe9", "label": "x"}\n')
    return ["plan", spec]


def _txt(c: Case) -> list[str]:
    (c.tmp / "t.txt").write_text("a text\n")
    return ["plan", c.spec(datasets=[{"name": "t", "train": str(c.tmp / "t.txt"),
                                      "test": str(c.data / "ag_news" / "test.jsonl")}])]


def _texts(c: Case, text: str) -> list[str]:
    return ["plan", c.dataset("texts", [dict(r, text=text) for r in c.train_rows()])]


CASES: list[tuple[str, Callable[[Case], list[str]], str]] = [
    # the spec file
    ("spec missing", lambda c: ["plan", str(c.tmp / "nope.yaml")], "nope.yaml: no such spec file"),
    ("spec not UTF-8", lambda c: ["plan", c.spec(b"name: \xff\xfe\n")], "not UTF-8"),
    ("spec invalid YAML", lambda c: ["plan", c.spec("name: [a\nb: c\n")], "invalid YAML at line"),
    ("spec duplicate key", lambda c: ["plan", c.spec("name: a\ndatasets: [ag_news]\nname: b\n")],
     "duplicate key 'name' at line 3 (first at line 1)"),
    ("spec alias bomb", lambda c: ["plan", c.spec("a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{','.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg")))],
     "aliases expand to more than 100,000 values"),
    ("spec recursive alias", lambda c: ["plan", c.spec("a: &a\n  b: *a\n")], "recursive alias"),
    ("spec not a mapping", lambda c: ["plan", c.spec("- a\n- b\n")], "expected a mapping at the top level"),
    ("unknown key", lambda c: ["plan", c.spec(bugets=[16])], "bugets: unknown key"),
    ("missing datasets", lambda c: ["plan", c.spec("name: x\n")], "datasets: required key is missing"),
    ("name with a path", lambda c: ["plan", c.spec(name="../etc")], "name: '../etc' must be lower case"),
    ("dataset name with a path", lambda c: ["plan", c.spec(datasets=[{"name": "../../etc", "train": "x.jsonl"}])],
     "datasets[0].name: '../../etc' must be lower case"),
    ("kubernetes secret name invalid", lambda c: ["plan", c.spec(kubernetes={"s3_secret": "My_Secret"})],
     "kubernetes.s3_secret: 'My_Secret' is not a valid Kubernetes name"),
    ("unknown setting", lambda c: ["plan", c.spec(settings=["bert", "clustt"])], "unknown setting 'clustt'"),
    ("setting twice", lambda c: ["plan", c.spec(settings=["bert", "bert"])], "list each setting once"),
    ("budget twice", lambda c: ["plan", c.spec(budgets=[16, 16])], "budgets: 16 is listed twice"),
    ("budget zero", lambda c: ["plan", c.spec(budgets=[0])], "budgets: 0 is not a positive number"),
    ("budget above the train set", lambda c: ["plan", c.spec(budgets=[100000])], "larger than the train set"),
    ("repetitions zero", lambda c: ["plan", c.spec(repetitions=0)], "repetitions: must be at least 1"),
    ("repetitions enormous", lambda c: ["plan", c.spec(repetitions=10**9)], "--allow-large"),
    ("repetitions a word", lambda c: ["plan", c.spec(repetitions="five")], "repetitions: expected integer"),
    ("seed negative", lambda c: ["plan", c.spec(seed=-1)], "seed: a seed is between 0"),
    ("epochs infinite", lambda c: ["plan", c.spec(json.dumps(c.base()).replace('"epochs": 1', '"epochs": .inf'))],
     "finetune.epochs: must be a finite number"),
    ("learning rate NaN", lambda c: ["plan", c.spec(json.dumps(c.base()).replace(
        '"finetune": {', '"finetune": {"lr": .nan, '))], "finetune.lr: must be a finite number"),
    ("max_length out of range", lambda c: ["plan", c.spec(finetune={"max_length": 100000})],
     "finetune.max_length: must be between 8 and 4096"),
    ("max_length beyond the model", lambda c: ["run", c.spec(finetune={"max_length": 1000})],
     "finetune.max_length: 1000 > 128"),
    ("unknown protocol", lambda c: ["plan", c.spec(protocols=["fast"])], "unknown protocol 'fast'"),
    ("unknown sampling", lambda c: ["plan", c.spec(sampling=["best"])], "unknown sampling 'best'"),
    ("more clusters than texts", lambda c: ["plan", c.spec(clustering={"n_clusters": 1000})],
     "fewer than n_clusters=1000"),
    ("cluster sampling, more clusters than texts", lambda c: ["plan", c.spec(
        settings=["bert"], sampling=["cluster"], clustering={"n_clusters": 1000})], "fewer than n_clusters=1000"),
    # the data
    ("dataset missing", lambda c: ["plan", c.spec(datasets=["nowhere"])], "nowhere"),
    ("malformed JSON line", lambda c: ["plan", c.dataset("broken", '{"text": "a", "label": "x"}\n{"text": \n')],
     "train.jsonl:2: malformed JSON line"),
    ("JSON line not an object", lambda c: ["plan", c.dataset("arr", '["a", "b"]\n')], "train.jsonl:1: expected a JSON object"),
    ("text field missing", lambda c: ["plan", c.dataset("notext", [{"body": "a", "label": "x"}])],
     "train.jsonl:1: missing field 'text'"),
    ("label a list", lambda c: ["plan", c.dataset("listlabel", [dict(r, label=[r["label"]]) for r in c.train_rows()])],
     "train.jsonl:1: field 'label' must be a string or a number, got list"),
    ("train file empty", lambda c: ["plan", c.dataset("empty", "")], "file is empty"),
    ("every text empty", lambda c: _texts(c, ""), "is empty"),
    ("only stop words", lambda c: _texts(c, "the and of a"), "0 texts with a word left after stop-word removal"),
    ("one label only", lambda c: ["plan", c.dataset("onelabel", [dict(r, label="x") for r in c.train_rows()],
                                                    [{"text": "t", "label": "x"}])], "fewer than two labels"),
    ("test label unseen", lambda c: ["plan", c.dataset("unseen", c.train_rows(), [{"text": "t", "label": "zzz"}])],
     "test labels absent from train: zzz"),
    ("data not UTF-8", _latin1, "train.jsonl: not UTF-8"),
    ("train file .txt", _txt, "t.txt: not a .jsonl or .csv file"),
    # the model
    ("model unknown", lambda c: ["run", c.spec(model="no-such-org/no-such-model")], "unknown model 'no-such-org/no-such-model'"),
    ("model folder missing, plan", lambda c: ["plan", c.spec(model=str(c.tmp / "absent"))],
     "does not exist"),
    ("model folder missing, run", lambda c: ["run", c.spec(model=str(c.tmp / "absent"))], "does not exist"),
    ("model folder without config", lambda c: ["run", c.spec(model=str(c.tmp))], "has no config.json"),
    ("model folder without weights", lambda c: ["run", c.spec(model=str(c.model_copy("light", keep_weights=False)))],
     "has no weights"),
    ("model weights truncated", _truncated, "corrupt weights"),
    ("model folder without tokenizer", lambda c: ["run", c.spec(model=str(_without(c, "vocab.txt", "tokenizer.json")))],
     "has no tokenizer"),
    ("predict with an encoder, no head", lambda c: ["predict", c.model, str(c.data / "ag_news" / "test.jsonl")],
     "has no classification head"),
    ("predict texts missing", lambda c: ["predict", c.model, str(c.tmp / "missing.txt")], "missing.txt"),
    # the store
    ("store unreachable, credentials in its URL", lambda c: ["plan", c.spec(), "--store", f"s3://user:{SECRET}@bucket-1/p"],
     "carries no credentials"),
    ("store unreachable", lambda c: ["plan", c.spec(), "--store", "s3://bucket-1/p"], "cannot reach store s3://bucket-1/p"),
    ("store bucket name invalid", lambda c: ["plan", c.spec(), "--store", "s3://b/p"], "bucket names are 3-63"),
    ("store scheme unknown", lambda c: ["plan", c.spec(), "--store", "gs://bucket-1/p"], "unsupported store URI"),
    # the command line
    ("--jobs negative", lambda c: ["run", c.spec(), "--jobs", "-3"], "--jobs: must be at least 1, got -3"),
    ("--jobs a word", lambda c: ["run", c.spec(), "--jobs", "many"], "--jobs"),
    ("--only unknown kind", lambda c: ["run", c.spec(), "--only", "clusterr"], "unknown step kind(s) clusterr"),
    ("suggest --budget 0", lambda c: ["suggest", "--budget", "0", str(c.data / "ag_news" / "train.jsonl")],
     "--budget: must be at least 1, got 0"),
    ("suggest --budget -5", lambda c: ["suggest", "--budget", "-5", str(c.data / "ag_news" / "train.jsonl")],
     "--budget: must be at least 1, got -5"),
    ("train --clusters 0", lambda c: ["train", str(c.data / "ag_news" / "train.jsonl"), "--out", str(c.tmp / "o"),
                                      "--clusters", "0"], "--clusters: must be at least 2, got 0"),
    ("unknown option", lambda c: ["plan", c.spec(), "--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("name, make, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(name, make, fragment, tmp_path, data_dir, tiny_model):
    case = Case(tmp_path, data_dir, tiny_model)
    argv = make(case)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_ENDPOINT_URL": f"http://user:{SECRET}@127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1",
           "CTUNE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "controller.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines and all(line.startswith("error: ") for line in lines), done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout
    assert any(fragment in line for line in lines), done.stderr
    assert not list(case.store.rglob("_SUCCESS")) if case.store.exists() else True
    print(f"\nCATALOGUE | {name} | `{lines[0].removeprefix('error: ')}` |")


KINDS_OF_BAD_INPUT = {
    "a malformed spec": "invalid YAML at line",
    "malformed data": "train.jsonl:1: expected",
    "too few texts": "larger than the train set",
    "an unknown model": "unknown model",
    "an unreachable store": "cannot reach store",
}
"""What DEVELOPERS.md names as bad input, each by the fragment of a case that shows it."""


def test_the_catalogue_covers_each_kind_of_bad_input_and_each_command(tmp_path, data_dir, tiny_model):
    assert len({c[0] for c in CASES}) == len(CASES), "two cases share a name"
    fragments = [fragment for _, _, fragment in CASES]
    missing = [kind for kind, needle in KINDS_OF_BAD_INPUT.items() if not any(needle in f for f in fragments)]
    assert not missing, f"no case shows {missing}"
    case = Case(tmp_path, data_dir, tiny_model)
    commands = {make(case)[0] for _, make, _ in CASES}
    assert {"plan", "run", "predict", "suggest", "train"} <= commands, commands


def test_plan_asks_no_hub_for_a_hub_model(tmp_path):
    # ctune plan checks the model as ctune run does, but a hub id is not asked of the hub
    # (plan works offline; a path that is not there is a case of the catalogue above)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    plan = subprocess.run([sys.executable, "-m", "controller.cli", "plan", "experiments/paper.yaml", "--store",
                           str(tmp_path / "store")], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert plan.returncode == 0, plan.stderr
    assert "3174 steps" in plan.stdout
