"""ctune train -> a model folder plain transformers loads; ctune predict labels new texts."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import put_training_texts

pytestmark = pytest.mark.pipeline


def test_train_then_predict(tmp_path, data_dir, tiny_model, ctune):
    src = data_dir / "ag_news"
    lines = (src / "train.jsonl").read_text().splitlines()
    (tmp_path / "labeled.jsonl").write_text("\n".join(lines[:40]) + "\n")
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines[40:]) + "\n")
    out = tmp_path / "model"
    store = tmp_path / "store"
    # WHEN a model is trained with the default setting: cluster inter-training, then a linear probe
    # on the inter-trained and the pretrained encoder's embeddings side by side, fitted again with
    # the corpus texts it labels most confidently
    result = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                   "--out", str(out), "--model", tiny_model, "--clusters", "4", "--store", str(store))
    assert result.returncode == 0, result.stderr
    # AND it says what it measured and chose before the inter-training starts
    said = result.stderr
    assert said.index("clusters vs your 40 labeled texts: AMI") < said.index(
        "setting: clust+concat+self (cluster inter-training, then a linear probe on it and the pretrained encoder, "
        "fitted again with the corpus texts it labels most confidently)")
    assert said.index("setting: clust+concat+self") < said.index("... intertrain")
    assert "setting clust+concat+self (" not in said.splitlines()[-1]  # no protocol named: nothing is fine-tuned
    info = json.loads((out / "ctune.json").read_text())
    assert info["labeled"] == 40 and info["corpus"] == 240 and info["setting"] == info["asked"] == "clust+concat+self"
    # of the 240 corpus texts, each predicted class's most confident 30% (by confidence alone, a
    # probe's default), never one of the 40 labeled
    summary = next(json.loads(p.read_text()) for p in store.glob("steps/fit/*/fit.json"))
    assert summary["corpus"] == 240 and 0.3 * 200 <= summary["pseudo_labeled"] <= 0.3 * 240 + 4
    assert "labeled_ami" in info and info["advice_threshold"] is None  # measured, as information
    assert info["protocol"] is None  # a probe fine-tunes nothing
    names = {"Business", "Sci/Tech", "Sports", "World"}
    # THEN plain transformers loads both encoders (the pretrained one in base/, as it was), and
    # the probe beside them is a softmax layer over their embeddings side by side
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder, tokenizer = AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    base = AutoModel.from_pretrained(out / "base")
    assert set(encoder.config.id2label.values()) == names
    pretrained = AutoModel.from_pretrained(tiny_model).state_dict()
    assert all(torch.equal(v, pretrained[k]) for k, v in base.state_dict().items())
    assert not torch.equal(encoder.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)
    head = json.loads((out / "probe_head.json").read_text())
    assert head["beside"] == "base"
    assert set(head["labels"]) == names and np.asarray(head["weight"]).shape == (4, 2 * encoder.config.hidden_size)
    # AND predict writes one row per text with a label and scores
    pred = ctune("predict", str(out), str(src / "test.jsonl"), "--format", "csv")
    assert pred.returncode == 0, pred.stderr
    assert pred.stderr == ""  # no third-party progress bars (weight loading) around the predictions
    rows = list(csv.DictReader(io.StringIO(pred.stdout)))
    assert len(rows) == 60
    assert {r["label"] for r in rows} <= names
    assert all(abs(sum(float(r[f"score_{n}"]) for n in names) - 1) < 1e-4 for r in rows)
    # AND its scores are the head applied by hand to plain transformers' mean-pooled embeddings
    texts = [r["text"] for r in rows[:5]]
    enc = tokenizer(texts, truncation=True, max_length=head["max_length"], padding=True, return_tensors="pt")
    mask = enc["attention_mask"].unsqueeze(-1).float()
    with torch.no_grad():
        pooled = np.hstack([((m(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)).numpy() for m in (encoder, base)])
    z = pooled @ np.asarray(head["weight"]).T + np.asarray(head["bias"])
    by_hand = np.exp(z - z.max(1, keepdims=True))
    by_hand /= by_hand.sum(1, keepdims=True)
    predicted = np.array([[float(r[f"score_{n}"]) for n in head["labels"]] for r in rows[:5]])
    np.testing.assert_allclose(predicted, by_hand, atol=1e-4)
    txt = tmp_path / "texts.txt"
    txt.write_text("stocks fell sharply\nthe striker scored twice\n")
    as_jsonl = ctune("predict", str(out), str(txt))
    assert [json.loads(line)["text"] for line in as_jsonl.stdout.splitlines()] == \
        ["stocks fell sharply", "the striker scored twice"]
    # AND training again refuses to overwrite the folder before running anything
    again = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                  "--out", str(out), "--model", tiny_model, "--clusters", "4", "--store", str(store))
    assert again.returncode == 2 and again.stderr.strip().endswith("exists and is not empty")
    assert "  ... " not in again.stderr  # no step was started
    # AND --setting clust fine-tunes the same inter-trained encoder (only the fit runs): a sequence
    # classifier plain transformers loads whole
    tuned = tmp_path / "tuned"
    fine = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                 "--out", str(tuned), "--model", tiny_model, "--clusters", "4", "--store", str(store),
                 "--setting", "clust")
    assert fine.returncode == 0, fine.stderr
    assert "... fit" in fine.stderr and "... intertrain" not in fine.stderr and "... cluster" not in fine.stderr
    assert fine.stderr.strip().endswith("(strong protocol)")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tuned)
    assert set(model.config.id2label.values()) == names and not (tuned / "probe_head.json").exists()
    assert ctune("predict", str(tuned), str(txt)).returncode == 0
    # AND --setting clust+probe keeps the inter-trained encoder alone under its probe
    alone = tmp_path / "alone"
    probe = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                  "--out", str(alone), "--model", tiny_model, "--clusters", "4", "--store", str(store),
                  "--setting", "clust+probe")
    assert probe.returncode == 0, probe.stderr
    head = json.loads((alone / "probe_head.json").read_text())
    assert "beside" not in head and not (alone / "base").exists()
    assert np.asarray(head["weight"]).shape == (4, encoder.config.hidden_size)
    assert ctune("predict", str(alone), str(txt)).returncode == 0
    # AND --setting clust+concat fits the concatenated probe once, on the labeled texts alone
    # (the same clustering and inter-training: only the fit runs)
    once = tmp_path / "once"
    concat = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                   "--out", str(once), "--model", tiny_model, "--clusters", "4", "--store", str(store),
                   "--setting", "clust+concat")
    assert concat.returncode == 0, concat.stderr
    assert "... fit" in concat.stderr and "... intertrain" not in concat.stderr
    assert "setting: clust+concat (cluster inter-training, then a linear probe on it and the pretrained encoder)" \
        in concat.stderr
    summaries = [json.loads(p.read_text()) for p in store.glob("steps/fit/*/fit.json")]
    assert sum("pseudo_labeled" in f for f in summaries) == 1 and sum(f.get("head") == "concat" for f in summaries) == 2
    once_head = json.loads((once / "probe_head.json").read_text())
    assert once_head["beside"] == "base" and np.asarray(once_head["weight"]).shape == (4, 2 * encoder.config.hidden_size)
    assert not np.allclose(once_head["weight"], json.loads((out / "probe_head.json").read_text())["weight"])
    assert json.loads((once / "ctune.json").read_text())["setting"] == "clust+concat"
    assert ctune("predict", str(once), str(txt)).returncode == 0


def test_auto_setting_skips_inter_training_when_labels_ignore_the_clusters(tmp_path, data_dir, tiny_model, ctune):
    import random

    lines = [json.loads(line) for line in (data_dir / "ag_news" / "train.jsonl").read_text().splitlines()]
    labels = [r["label"] for r in lines[:60]]
    random.Random(0).shuffle(labels)  # labels unrelated to the texts, so to their clusters
    (tmp_path / "labeled.jsonl").write_text("".join(
        json.dumps({"text": r["text"], "label": y}) + "\n" for r, y in zip(lines[:60], labels)))
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in lines[60:]))
    out = tmp_path / "model"
    result = ctune("train", str(tmp_path / "labeled.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
                   "--out", str(out), "--model", tiny_model, "--clusters", "6", "--store", str(tmp_path / "store"),
                   "--setting", "auto")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "ctune.json").read_text())
    assert info["asked"] == "auto" and info["labeled_ami"] < info["advice_threshold"]
    assert info["setting"] == "bert" and "chosen by the advice" in result.stderr
    assert result.stderr.index("setting: bert (the advice: inter-train when AMI >=") < result.stderr.index("... fit")
    assert "not a recommendation: judged leave one dataset out" in result.stderr  # the finding beside the rule
    assert not list((tmp_path / "store").glob("steps/intertrain/*"))  # no inter-training was run


def test_train_needs_two_labels(tmp_path, tiny_model, ctune):
    (tmp_path / "l.jsonl").write_text('{"text": "a b", "label": "x"}\n{"text": "c d", "label": "x"}\n')
    result = ctune("train", str(tmp_path / "l.jsonl"), "--out", str(tmp_path / "m"), "--model", tiny_model,
                   "--store", str(tmp_path / "s"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'l.jsonl'}: at least two different labels are needed, found 1"


def test_suggest_spreads_the_budget_over_clusters(tmp_path, data_dir, ctune):
    corpus = data_dir / "ag_news" / "train.jsonl"
    result = ctune("suggest", str(corpus), "--budget", "12", "--clusters", "8", "--store", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 12 and len({r["index"] for r in rows}) == 12
    assert len({r["cluster"] for r in rows}) == 8  # every cluster gets at least one
    texts = corpus.read_text().splitlines()
    assert all(json.loads(texts[r["index"]])["text"] == r["text"] for r in rows)
    too_many = ctune("suggest", str(corpus), "--budget", "999", "--store", str(tmp_path / "s"))
    assert too_many.returncode == 2 and "larger than the corpus (240 texts)" in too_many.stderr


def test_train_into_a_registry_then_list_roll_back_and_predict_from_it(tmp_path, data_dir, tiny_model, ctune,
                                                                      s3_env, monkeypatch):
    import time

    from jobs.storage import open_store

    bucket = open_store(f"s3://{s3_env}")
    _, unlabeled = put_training_texts(bucket, data_dir, "data/labeled.jsonl", "data/corpus/part-000.jsonl",
                                      "data/dev.jsonl", 120)
    registry = f"s3://{s3_env}/models/news"
    store = str(tmp_path / "store")
    n_dev = len(bucket.read_bytes("data/dev.jsonl").splitlines())
    train = ["train", f"s3://{s3_env}/data/labeled.jsonl", "--corpus", f"s3://{s3_env}/data/corpus/",
             "--dev", f"s3://{s3_env}/data/dev.jsonl", "--out", registry, "--model", tiny_model, "--clusters", "4",
             "--store", store]
    # WHEN a first version is trained from the bucket: it becomes current
    first = ctune(*train)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[-1].startswith("promoted ") and "(no current version)" in first.stderr
    # AND the same inputs again make no version and compute nothing
    t0 = time.time()
    same = ctune(*train)
    assert same.returncode == 0 and "nothing new" in same.stderr and "... intertrain" not in same.stderr, same.stderr
    print(f"\nno-change retrain: {time.time() - t0:.1f} s")
    # AND new corpus texts make a second version, scored against the first on the same dev set
    bucket.write_bytes("data/corpus/part-001.jsonl", ("\n".join(unlabeled[120:]) + "\n").encode())
    unclear = ctune(*train)
    # two tiny random models on 60 dev texts: the interval cannot rule out a loss of 2 points
    assert unclear.returncode == 5, unclear.stderr
    last = unclear.stderr.splitlines()[-1]
    assert last.startswith("inconclusive: ") and "dev texts would decide" in last and "stays current" in last
    assert ctune(*train).returncode == 5  # the same again: the same answer, nothing scored
    second = ctune(*train, "--tolerance", "100")  # other settings: decided again
    assert second.returncode == 0, second.stderr
    assert "current version" in second.stderr and second.stderr.splitlines()[-1].startswith("promoted ")
    listed = ctune("models", "ls", registry)
    rows = listed.stdout.splitlines()[1:]
    assert listed.returncode == 0 and len(rows) == 2 and rows[1].startswith("* ") and "current" in rows[1]
    v1, v2 = rows[0].split()[0], rows[1].split()[1]
    shown = ctune("models", "show", f"{registry}@{v1}")
    assert shown.returncode == 0 and f"version {v1} (earlier)" in shown.stdout and "gate" in shown.stdout
    # AND a rollback makes the first current again, the history kept; a promote moves it back
    back = ctune("models", "rollback", registry)
    assert back.returncode == 0 and f"current: {v1}" in back.stderr
    assert ctune("models", "promote", registry, v2).returncode == 0
    pointer = json.loads(bucket.read_bytes("models/news/current.json"))
    assert [m["action"] for m in pointer["log"]] == ["promote", "promote", "rollback", "promote"]
    # AND each version holds its classifier as one ONNX graph, checked against the model on the dev set
    record = json.loads(bucket.read_bytes(f"models/news/versions/{v1}/record.json"))
    assert record["onnx"]["agreement"] >= 0.999 and record["onnx"]["max_difference"] <= 1e-4
    assert record["onnx"]["texts"] == n_dev and "accepted" in record["onnx"]["int8"]
    held = set(bucket.list(f"models/news/versions/{v1}/onnx"))
    assert {f"models/news/versions/{v1}/onnx/{f}" for f in ("model.onnx", "model.int8.onnx", "tokenizer.json",
                                                              "labels.json")} <= held
    # AND predicting from the registry (its ONNX graph, with onnxruntime) gives the labels the same
    # model exported to a folder gives with torch, and --runtime torch gives exactly what the folder gives
    texts = tmp_path / "texts.txt"
    texts.write_text("stocks fell on wall street\nthe team won the cup final\nrain again\n")
    auto = ctune("predict", f"{registry}@{v1}", str(texts))  # the int8 graph where the gate accepted it
    int8 = "accepted" if record["onnx"]["int8"]["accepted"] else "not"
    assert auto.returncode == 0 and f"version {v1}: {'onnx-int8' if int8 == 'accepted' else 'onnx'}, " in auto.stderr
    from_registry = ctune("predict", f"{registry}@{v1}", str(texts), "--runtime", "onnx")
    assert from_registry.returncode == 0 and f"version {v1}: onnx, asked for" in from_registry.stderr
    with_torch = ctune("predict", f"{registry}@{v1}", str(texts), "--runtime", "torch")
    folder = ctune("train", str(tmp_path / "l.jsonl"), "--out", str(tmp_path / "m"), "--model", tiny_model)
    assert folder.returncode == 2  # (a local file that is not there: one line)
    bucket_file = tmp_path / "labeled.jsonl"
    bucket_file.write_bytes(bucket.read_bytes("data/labeled.jsonl"))
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text("\n".join(unlabeled[:120]) + "\n")
    exported = ctune("train", str(bucket_file), "--corpus", str(corpus_file), "--out", str(tmp_path / "v1"),
                     "--model", tiny_model, "--clusters", "4", "--store", store)
    assert exported.returncode == 0, exported.stderr
    from_folder = ctune("predict", str(tmp_path / "v1"), str(texts))
    assert with_torch.returncode == 0 and with_torch.stdout == from_folder.stdout != ""
    onnx_rows, torch_rows = ([json.loads(x) for x in out.stdout.splitlines()] for out in (from_registry, from_folder))
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows] and len(onnx_rows) == 3
    assert max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(onnx_rows, torch_rows) for k in a["scores"]) <= 1e-4
    # AND a new version the gate refuses is recorded, not current, and ends with exit code 4
    from controller import cli
    from controller.practice import training as practitioner

    real = practitioner.dev_predictor

    def the_new_model_gets_everything_wrong(store_, backend, dev_prefix, on_event):
        predict = real(store_, backend, dev_prefix, on_event)
        return lambda uri: ["nonsense"] * n_dev if uri.startswith(str(store)) else predict(uri)

    monkeypatch.setattr(practitioner, "dev_predictor", the_new_model_gets_everything_wrong)
    bucket.write_bytes("data/corpus/part-002.jsonl", (unlabeled[0] + "\n").encode())
    assert cli.main(train) == 4
    assert ctune("models", "ls", registry).stdout.count("refused") == 1
    assert json.loads(bucket.read_bytes("models/news/current.json"))["current"] == v2
    # AND run again (a retried pod): refused again, exit code 4 again, nothing scored
    monkeypatch.setattr(practitioner, "dev_predictor", lambda *a: lambda uri: pytest.fail("scored again"))
    assert cli.main(train) == 4


def test_a_registry_needs_a_dev_set_whose_labels_are_the_models(tmp_path, data_dir, tiny_model, ctune):
    lines = (data_dir / "ag_news" / "train.jsonl").read_text().splitlines()
    (tmp_path / "labeled.jsonl").write_text("\n".join(lines[:40]) + "\n")
    (tmp_path / "dev.jsonl").write_text('{"text": "a", "label": "Weather"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    registry = tmp_path / "registry"
    (registry / "versions").mkdir(parents=True)
    base = ["train", str(tmp_path / "labeled.jsonl"), "--out", str(registry), "--model", tiny_model,
            "--store", str(tmp_path / "store")]
    for extra, expected in (([], "--dev (labeled texts never trained on) is needed"),
                            (["--dev", str(tmp_path / "dev.jsonl")], "labels Weather are not the model's"),
                            (["--dev", str(tmp_path / "empty.jsonl")], "empty"),
                            (["--dev", str(tmp_path / "dev.jsonl"), "--backend", "kubernetes"],
                             "is a folder: with --backend kubernetes the registry must be in the store")):
        result = ctune(*base, *extra)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    none = ctune("models", "ls", str(registry))
    assert none.returncode == 2 and "holds no versions" in none.stderr
    missing = ctune("models", "ls", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not a model registry" in missing.stderr, missing.stderr
    assert not (tmp_path / "nowhere").exists()
    assert not (tmp_path / "store" / "steps").exists()  # refused before any training
