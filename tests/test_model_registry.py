"""The model registry without training: the gate, the pointer under two writers and a crash,
bad inputs, the model card. Models are folders of one file; a fake ``predict`` answers for
each (what a job process would), so every decision is known in advance."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from controller.models.card import render_card
from controller.models.gate import decide, score
from controller.models.publish import publish
from controller.models.registry import Registry, RegistryError, split_ref
from jobs.data import DataError, Examples

pytestmark = pytest.mark.unit

DEV = Examples(tuple(f"text {i}" for i in range(10)), tuple("ab"[i % 2] for i in range(10)))


def model(tmp_path: Path, name: str, right: int) -> Path:
    """A 'model' that labels the first ``right`` dev texts correctly and the rest wrongly."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(f'{{"right": {right}}}')
    return folder


def fake_predict(model_uri: str) -> list[str]:
    """What an evaluate step of the model at ``model_uri`` (a folder here) would label DEV."""
    import json

    right = json.loads((Path(model_uri) / "config.json").read_text())["right"]
    gold = list(DEV.labels)
    return [gold[i] if i < right else ("b" if gold[i] == "a" else "a") for i in range(len(gold))]


def info(version: str) -> dict:
    return {"steps": {"cluster": "c" * 64, "fit": version * 4}, "labels": ["a", "b"], "setting": "clust+concat+self",
            "asked": "clust+concat+self", "labeled": 40, "corpus": 240, "labeled_digest": "1" * 64,
            "corpus_digest": "2" * 64, "dataset": "datasets/train-x", "model": "minilm", "labeled_ami": 0.2,
            "labeled_nmi": 0.3}


def run(registry, tmp_path, version: str, right: int, tolerance: float = 1.0, predict=fake_predict):
    folder = model(tmp_path, f"m-{version}-{right}", right)
    return publish(registry, lambda: folder, str(folder), info(version), DEV, "dev.jsonl", tolerance, predict,
                   lambda line: None)


def test_scores_are_accuracy_and_macro_f1_in_points():
    s = score(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert s.accuracy == 75.0 and s.n == 4
    assert s.macro_f1 == pytest.approx(100 * (2 / 3 + 0.8) / 2)  # F1 a = 2/3, F1 b = 4/5


def test_the_gate_promotes_within_the_tolerance_and_refuses_beyond_it():
    current = score(list("aabb"), list("aabb"))
    slightly = score(list("aabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabb"),
                     list("aabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaabbaaba"))
    assert 98.0 < slightly.accuracy < 100.0
    assert decide(slightly, current, "v1", 1.5).promote and decide(slightly, current, "v1", 1.0).why.endswith("-1.0")
    refused = decide(slightly, current, "v1", 0.5)
    assert not refused.promote and "worse than v1 by more than 0.5 points: accuracy -1.0" in refused.why
    assert decide(current, None, None, 0.0).why == "no current version"


def test_publish_promotes_refuses_and_keeps_every_version(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    first = run(registry, tmp_path, "a", right=8)
    assert first.promoted and first.current == "a" * 4 and registry.pointer().current == "a" * 4
    worse = run(registry, tmp_path, "b", right=6)  # 60 against 80: refused
    assert worse.new and not worse.promoted and worse.current == "a" * 4
    record = registry.record("b" * 4)
    assert record["gate"]["promote"] is False and record["gate"]["current"]["accuracy"] == 80.0
    assert record["gate"]["new"]["accuracy"] == 60.0 and "worse than aaaa" in record["gate"]["why"]
    tolerated = run(registry, tmp_path, "c", right=6, tolerance=25.0)
    assert tolerated.promoted and registry.pointer().current == "c" * 4
    # the same inputs again: nothing new, nothing evaluated, no version made
    calls = []
    again = run(registry, tmp_path, "b", right=10, predict=lambda uri: calls.append(uri) or fake_predict(uri))
    assert not again.new and calls == [] and registry.pointer().current == "c" * 4
    assert [r["version"] for r in registry.versions()] == ["a" * 4, "b" * 4, "c" * 4]
    assert (tmp_path / "reg/versions/aaaa/model/config.json").is_file()


def test_two_trainers_at_once_leave_one_current_and_both_versions(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    barrier = threading.Barrier(2)

    def slow_predict(model_uri):  # both evaluate before either moves the pointer
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return fake_predict(model_uri)

    outcomes = {}
    threads = [threading.Thread(target=lambda v=v, r=r: outcomes.update({v: run(registry, tmp_path, v, r,
                                                                               predict=slow_predict)}))
               for v, r in (("a", 8), ("b", 9))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    pointer = registry.pointer()
    assert registry.has("a" * 4) and registry.has("b" * 4)
    # both saw no current version; one moved the pointer first, the other found it moved and
    # decided again against the winner: b (90) is promoted over a (80); a is refused beside b
    winner = pointer.log[0]["version"]
    loser = ({"a" * 4, "b" * 4} - {winner}).pop()
    assert registry.record(loser)["gate"]["current_version"] == winner
    assert pointer.current == "b" * 4
    assert len(pointer.log) == len(pointer.stack) == (2 if loser == "b" * 4 else 1)


def test_a_crash_between_the_version_and_its_pointer_is_finished_by_the_next_run(tmp_path, monkeypatch):
    registry = Registry(str(tmp_path / "reg"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(Registry, "move", crash)
    with pytest.raises(KeyboardInterrupt):
        run(registry, tmp_path, "a", right=8)
    monkeypatch.undo()
    assert registry.has("a" * 4) and registry.pointer().current is None  # complete version, old pointer
    with pytest.raises(RegistryError, match=r"has no current.json \(1 version\(s\)\)"):
        registry.resolve(None)
    finished = run(registry, tmp_path, "a", right=8)
    assert finished.new and finished.promoted and registry.pointer().current == "a" * 4
    assert [m["action"] for m in registry.pointer().log] == ["promote"]


def test_bad_dev_sets_and_missing_versions_are_one_line(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    other = Examples(("x", "y"), ("a", "c"))
    with pytest.raises(DataError, match="labels c are not the model's \\(a, b\\)"):
        publish(registry, lambda: model(tmp_path, "m", 1), "m", info("a"), other, "dev.jsonl", 1.0, fake_predict,
                print)
    with pytest.raises(DataError, match="no texts"):
        publish(registry, lambda: model(tmp_path, "n", 1), "n", info("a"), Examples((), ()), "dev.jsonl", 1.0,
                fake_predict, print)
    with pytest.raises(RegistryError, match="holds no model"):
        registry.resolve(None)
    with pytest.raises(RegistryError, match="has no version zzz"):
        registry.resolve("zzz")
    assert split_ref("s3://b/models/news@abc") == ("s3://b/models/news", "abc")
    assert split_ref("s3://b/models/news") == ("s3://b/models/news", None)


def test_a_version_seen_complete_is_not_asked_of_the_store_again(tmp_path, monkeypatch):
    from jobs.storage import LocalStore

    uri = str(tmp_path / "reg")
    run(Registry(uri), tmp_path, "a", 8)
    asked: list[str] = []
    real_exists = LocalStore.exists
    monkeypatch.setattr(LocalStore, "exists", lambda self, key: asked.append(key) or real_exists(self, key))
    registry = Registry(uri)
    version = registry.resolve(None)
    registry.fetch(registry.resolve(version))
    registry.record(version)
    assert [k for k in asked if k.endswith("_COMPLETE")] == [f"versions/{version}/_COMPLETE"]
    asked.clear()
    assert [r["version"] for r in Registry(uri).versions()] == [version]
    assert not [k for k in asked if k.endswith("_COMPLETE")]  # the listing says which are complete


def test_the_pointer_on_s3_moves_only_from_what_was_read(s3_env):
    registry = Registry(f"s3://{s3_env}/models/news")
    seen = registry.pointer()
    assert registry.move(seen, "promote", "v1", "first")
    assert not registry.move(seen, "promote", "v2", "stale read")  # If-None-Match: * refused
    now = registry.pointer()
    assert registry.move(now, "promote", "v2", "second")
    assert not registry.move(now, "rollback", "v2", "stale read")  # If-Match on the old ETag refused
    assert registry.pointer().stack == ("v1", "v2")


def test_the_model_card_has_hugging_face_front_matter(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=8)
    card = (tmp_path / "reg/versions/aaaa/README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "minilm" and "cluster-and-tune" in front["tags"]
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"accuracy": 80.0, "f1": 80.0}
    body = card.split("---\n", 2)[2]
    for expected in ("`a`, `b`", "| labeled | 40 |", "AMI 0.200", "**promoted: no current version**",
                     "AutoModelForSequenceClassification.from_pretrained"):
        assert expected in body, expected
    assert "probe_head.json" in render_card({**registry.record("a" * 4), "probe": True})
    assert time.time() - registry.record("a" * 4)["created"] < 60


def test_the_history_page_shows_every_version_its_figures_and_the_gates_word(tmp_path):
    import xml.etree.ElementTree as ET

    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=8)
    run(registry, tmp_path, "b", right=6)  # refused
    page = (tmp_path / "reg/history.html").read_text()
    assert "current: <b>aaaa</b>; 2 version(s); 1 move(s)" in page
    assert page.index("<td>bbbb</td>") < page.index("<td>aaaa</td>")  # newest first
    assert "<td>60.0</td>" in page and "<td>refused</td>" in page and "worse than aaaa" in page
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    circles = ET.fromstring(svg).findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 4  # accuracy and macro-F1 of each version
    assert [c.get("fill") for c in circles[:2]] == ["#1f77b4", "white"]  # a promoted, b not
