"""Retraining rounds into a registry, end to end on real AG News texts with a tiny model: what
changed (a topic injected in the second round), the batch to label next, a label added, and
the corpus bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_data

pytestmark = pytest.mark.pipeline

TOPIC = "Sci/Tech"


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (shared_data() / "ag_news" / f"{split}.jsonl").read_text().splitlines()]


def _write(path: Path, rows: list[dict], keys=("text", "label")) -> str:
    path.write_text("".join(json.dumps({k: r[k] for k in keys}) + "\n" for r in rows))
    return str(path)


def _record(registry: Path, version: str) -> dict:
    return json.loads((registry / "versions" / version / "record.json").read_text())


def _newest(registry: Path) -> str:
    records = [json.loads(p.read_text()) for p in registry.glob("versions/*/record.json")]
    return max(records, key=lambda r: r["created"])["version"]


def test_a_round_reports_an_injected_topic_proposes_texts_and_compares_on_the_labels_both_know(
        tmp_path, tiny_model, ctune):
    train = _rows("train")[:2000]
    others = [r for r in train if r["label"] != TOPIC]
    topic = [r for r in train if r["label"] == TOPIC]
    labeled, corpus_old = others[:40], others[40:440]
    registry, store = tmp_path / "registry", str(tmp_path / "store")
    dev = [r for r in _rows("test")[:400] if r["label"] != TOPIC][:80]
    base = ["--out", str(registry), "--model", tiny_model, "--clusters", "8", "--store", store, "--batch", "12"]
    # GIVEN a first round without the topic
    first = ctune("train", _write(tmp_path / "l1.jsonl", labeled), "--corpus",
                  _write(tmp_path / "c1.jsonl", corpus_old, ("text",)), "--dev", _write(tmp_path / "d1.jsonl", dev),
                  *base)
    assert first.returncode == 0, first.stderr
    assert "what changed: not compared (no version in use)" in first.stderr
    v1 = _newest(registry)
    assert (registry / "versions" / v1 / "corpus_index.npy").is_file()
    # WHEN the second round's corpus adds 150 texts of a new topic, and its labeled set the topic's label
    labeled2 = labeled + topic[:12]
    dev2 = dev + [r for r in _rows("test")[:400] if r["label"] == TOPIC][:30]
    second = ctune("train", _write(tmp_path / "l2.jsonl", labeled2), "--corpus",
                   _write(tmp_path / "c2.jsonl", corpus_old + topic[12:162], ("text",)), "--dev",
                   _write(tmp_path / "d2.jsonl", dev2), *base, "--tolerance", "100")
    assert second.returncode == 0, second.stderr
    v2 = _newest(registry)
    record = _record(registry, v2)
    report = record["drift"]
    # THEN the round names the clusters the new texts fill, and they are the topic's
    assert report["against"] == v1 and report["compared"] and report["new"] == 162  # 12 labeled + 150
    emerging = report["emerging"]
    assert emerging, report
    gold = {r["text"]: r["label"] for r in train}
    assert all(e["new"] / e["texts"] > report["new_share"] and e["p"] * report["clusters"] < 0.01 for e in emerging)
    in_emerging_examples = [gold[t] for e in emerging for t in e["examples"] if t in gold]
    assert in_emerging_examples and all(label == TOPIC for label in in_emerging_examples)
    assert all(e["top_stems"] for e in emerging)
    assert report["labels"]["p"] is not None and set(report["labels"]["old"]) >= {"Business", "Sports", "World"}
    assert 0 <= report["dev_coverage"]["new_share_in_thin"] <= 1 and report["dev_coverage"]["dev_texts"] == 110
    assert "emerging topics: " + str(len(emerging)) in second.stderr and "cluster " in second.stderr
    # AND the label added is reported, and the gate compared on the dev texts of the labels both know
    assert record["labels_added"] == [TOPIC] and record["labels_dropped"] == []
    against = record["gate"]["comparisons"][0]
    assert against["left_out"] == [TOPIC] and against["evidence"]["n"] == 80 and f"(not {TOPIC})" in against["why"]
    card = (registry / "versions" / v2 / "README.md").read_text()
    assert f"added {TOPIC}" in card and "## This round" in card and "emerging topics" in card
    shown = ctune("models", "show", f"{registry}@{v2}")
    assert shown.returncode == 0 and "emerging topics" in shown.stdout and f"added {TOPIC}" in shown.stdout
    assert "what changed, what to label next" in (registry / "history.html").read_text()
    # AND the batch to label: 12 unlabeled corpus texts in the labeled files' format, weighted to the topic
    out = tmp_path / "to_label.jsonl"
    suggested = ctune("suggest", "--registry", str(registry), "--output", str(out))
    assert suggested.returncode == 0, suggested.stderr
    batch = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(batch) == 12 == report["batch"]["texts"] and all(r["label"] is None for r in batch)
    labeled_texts = {r["text"] for r in labeled2}
    assert all(r["text"] in gold and r["text"] not in labeled_texts for r in batch)
    assert [r["why"] for r in batch] == sorted((r["why"] for r in batch), key=lambda w: w != "the versions disagree")
    assert sum(r["emerging"] for r in batch) == report["batch"]["emerging"] > 0
    assert ctune("suggest", "--registry", f"{registry}@{v1}").stdout.count("\n") == 12
    unlabeled = ctune("train", str(out), "--out", str(tmp_path / "m"), "--model", tiny_model)
    assert unlabeled.returncode == 2 and "to_label.jsonl:1: missing field 'label'" in unlabeled.stderr
    # AND a third round: the batch labeled (gold) and added to the labeled texts, the corpus left as it was
    # plus texts of the same mix as it: no topic emerges, and no labeled text is proposed again
    labeled3 = labeled2 + [{"text": r["text"], "label": gold[r["text"]]} for r in batch]
    mix = others[440:540] + topic[162:200]
    third = ctune("train", _write(tmp_path / "l3.jsonl", labeled3), "--corpus",
                  _write(tmp_path / "c3.jsonl", corpus_old + topic[12:162] + mix, ("text",)), "--dev",
                  str(tmp_path / "d2.jsonl"), *base, "--tolerance", "100")
    assert third.returncode == 0, third.stderr
    record3 = _record(registry, _newest(registry))
    report3 = record3["drift"]
    assert report3["against"] == v2 and report3["new"] == 138 and report3["emerging"] == [], report3["emerging"]
    assert record3["corpus_also_labeled"] == 12 and record3["corpus"] == len(labeled3) + 688 - 12
    assert "emerging topics: none" in third.stderr and "12 of them labeled texts too" in third.stderr
    again = [json.loads(line) for line in
             ctune("suggest", "--registry", str(registry)).stdout.splitlines()]
    assert len(again) == 12 and not {r["text"] for r in again} & {r["text"] for r in labeled3}


def test_a_bounded_round_clusters_a_sample_and_keeps_every_texts_digest(tmp_path, tiny_model, ctune):
    train = _rows("train")[:700]
    registry, store = tmp_path / "registry", str(tmp_path / "store")
    args = ["train", _write(tmp_path / "l.jsonl", train[:40]), "--corpus",
            _write(tmp_path / "c.jsonl", train[40:700], ("text",)), "--dev", _write(tmp_path / "d.jsonl", train[:30]),
            "--out", str(registry), "--model", tiny_model, "--clusters", "6", "--store", store, "--corpus-limit", "200"]
    result = ctune(*args)
    assert result.returncode == 0, result.stderr
    assert "a uniform sample of 200 of 660 texts read (--corpus-limit 200)" in result.stderr
    version = _newest(registry)
    record = _record(registry, version)
    assert record["corpus"] == 240 and record["corpus_read"] == 660 and record["corpus_kept"] == 200
    import numpy as np

    from jobs.contract.texts import digests

    index = np.load(registry / "versions" / version / "corpus_index.npy")
    assert index.tolist() == digests([r["text"] for r in train[:40] + train[40:700]]).tolist()
    staged = [json.loads(line) for p in Path(store).glob("datasets/train-*/train.jsonl")
              for line in p.read_text().splitlines()]
    assert len(staged) == 240 and [r["text"] for r in staged[:40]] == [r["text"] for r in train[:40]]
    newest = ctune(*args[:-2], "--corpus-limit", "100", "--corpus-pick", "newest", "--tolerance", "100")
    assert newest.returncode == 0, newest.stderr
    assert "the newest 100 of 660 texts read" in newest.stderr
