"""Spec validation: each problem is one line naming the key, and the CLI exits 2."""

from __future__ import annotations

import pytest

from controller.cli import main
from controller.plan.spec import SpecError, load_spec, parse_spec

pytestmark = pytest.mark.unit

BASE = {"name": "x", "datasets": ["ag_news"]}


def problems(raw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, "s.yaml")
    return info.value.problems


def test_defaults_are_the_papers():
    spec = parse_spec(BASE)
    assert spec.model == "minilm" and spec.settings == ("bert", "clust") and spec.repetitions == 5
    c = spec.clustering
    assert (c.n_clusters, c.n_init, c.max_iter, c.tol, c.max_features, c.seed) == (50, 10, 15, 0.02, 10000, 1024)
    assert (spec.finetune.epochs, spec.finetune.lr, spec.finetune.batch_size, spec.finetune.max_length) == \
        (10, 3e-5, 64, 128)
    assert spec.section("intertrain").epochs == 1


def test_partial_sections_keep_their_own_defaults():
    spec = parse_spec({**BASE, "intertrain": {"max_length": 64}, "datasets": [{"name": "d", "max_test": 10}]})
    assert spec.section("intertrain").epochs == 1 and spec.section("intertrain").max_length == 64
    assert spec.datasets[0].max_test == 10 and spec.datasets[0].text_field == "text"


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "epochs": 3}, "epochs: unknown key"),
    ({**BASE, "finetune": {"lr": 1e-5, "warmup": 3}}, "finetune.warmup: unknown key"),
    ({**BASE, "repetitions": "five"}, "repetitions: expected integer, got str 'five'"),
    ({**BASE, "budgets": [64, "x"]}, "budgets[1]: expected integer, got str 'x'"),
    ({**BASE, "clustering": {"n_clusters": 2.5}}, "clustering.n_clusters: expected integer, got float 2.5"),
    ({**BASE, "settings": ["bert", "magic"]}, "settings: unknown setting 'magic' (known: bert, mlm, clust, mlm+clust, probe"),
    ({**BASE, "clustering": {"method": "dbscan"}}, "clustering.method: unknown method 'dbscan'"),
    ({**BASE, "clustering": {"method": "kmeans", "embedding": "glove"}},
     "clustering.glove: a GloVe file is needed"),
    ({**BASE, "clustering": {"method": "kmeans", "embedding": "glove", "glove": "/no/such/file"}},
     "clustering.glove: no such file /no/such/file"),
    ({**BASE, "clustering": {"embedding": "bert"}}, "clustering.embedding: unknown embedding 'bert'"),
    ({"datasets": ["a"]}, "name: required key is missing"),
    ({**BASE, "name": "Bad Name"}, "name: 'Bad Name' must be lower case"),
    ({**BASE, "budgets": [0]}, "budgets: 0 is not a positive number of labels"),
    ({**BASE, "finetune": {"max_length": 4}}, "finetune.max_length: must be between 8 and 4096"),
    ([1, 2], "expected a mapping at the top level"),
    ({**BASE, "protocols": ["paper", "fast"]}, "protocols: unknown protocol 'fast' (known: paper, strong)"),
    ({**BASE, "strong": {"batch_size": 0}}, "strong.batch_size: must be at least 1"),
])
def test_each_problem_is_named(raw, expected):
    found = problems(raw)
    assert any(p.startswith(expected) for p in found), found


def test_several_problems_are_all_reported():
    found = problems({**BASE, "foo": 1, "repetitions": "x"})
    assert [p.split(":")[0] for p in found] == ["foo", "repetitions"], found
    assert found[0].startswith("foo: unknown key (known: name, datasets,")
    assert found[1].startswith("repetitions: expected integer")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndatasets: [ag_news\n")
    with pytest.raises(SpecError, match=r"invalid YAML at line \d"):
        load_spec(path)


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_cli_unknown_dataset(capsys, write_spec):
    code, err = run_cli(capsys, "plan", str(write_spec(datasets=["no_such_set"])))
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: unknown dataset 'no_such_set'") and "known: ag_news" in err[0]


def test_cli_budget_larger_than_train_set(capsys, write_spec):
    path = write_spec(budgets=[16, 5000])
    code, err = run_cli(capsys, "plan", str(path))
    assert code == 2
    assert err == [f"error: {path}: budgets: 5000 is larger than the train set of ag_news (240 texts)"]


def test_cli_fewer_texts_than_clusters(capsys, write_spec):
    code, err = run_cli(capsys, "plan", str(write_spec(datasets=[{"name": "ag_news", "max_train": 30}],
                                                       clustering={"n_clusters": 50})))
    assert code == 2
    assert err[0].endswith("clustering.n_clusters: ag_news has 30 texts to cluster, fewer than n_clusters=50")


@pytest.mark.parametrize("content, message", [
    ("", "ag_news/train.jsonl: file is empty"),
    ('{"text": "a", "label": "x"}\nnot json\n', "ag_news/train.jsonl:2: malformed JSON line"),
    ('{"text": "a"}\n', "ag_news/train.jsonl:1: missing field 'label'"),
])
def test_cli_bad_data(capsys, write_spec, data_dir, content, message):
    (data_dir / "ag_news" / "train.jsonl").write_text(content)
    code, err = run_cli(capsys, "run", str(write_spec()))
    assert code == 2 and len(err) == 1 and message in err[0]


def test_cli_unknown_model(capsys, write_spec, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_cli(capsys, "run", str(write_spec(model="no-such-org/no-such-model")))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: unknown model 'no-such-org/no-such-model'")


def test_cli_unreachable_store(capsys, write_spec, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    code, err = run_cli(capsys, "plan", str(write_spec(store="s3://bucket/x")))
    assert code == 2 and len(err) == 1 and err[0].startswith("error: cannot reach store s3://bucket/x")


def test_cli_missing_spec_file(capsys, tmp_path):
    code, err = run_cli(capsys, "plan", str(tmp_path / "absent.yaml"))
    assert code == 2 and err == [f"error: {tmp_path / 'absent.yaml'}: no such spec file"]
