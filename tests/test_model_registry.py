"""The model registry without training: publishing through the gate, the pointer under two
writers, a crash, a lost reply and a refusal run again, bad inputs, the model card. Models are
folders of one file; a fake ``predict`` answers for each (what a job process would), so every
decision is known in advance: a model labels the first ``right`` dev texts right and the rest
wrong, so two models disagree on exactly the texts between their ``right``s."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from controller.models.card import render_card
from controller.models.gate import POINT_ESTIMATE, GateSettings
from controller.models.publish import publish
from controller.models.registry import Registry, RegistryError, RegistryRaced, split_ref
from jobs.contract.errors import EXIT_RACED, cli_exit_code
from jobs.data import DataError, Examples

pytestmark = pytest.mark.unit

N = 400
DEV = Examples(tuple(f"text {i}" for i in range(N)), tuple("ab"[i % 2] for i in range(N)))
OTHER_DEV = Examples(DEV.texts[:300], DEV.labels[:300])


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


def run(registry, tmp_path, version: str, right: int, settings: GateSettings = GateSettings(), predict=fake_predict,
        dev: Examples = DEV):
    folder = model(tmp_path, f"m-{version}-{right}", right)
    return publish(registry, lambda: folder, str(folder), info(version), dev, "dev.jsonl", settings, predict,
                   lambda line: None)


def counting(calls: list):
    return lambda uri: calls.append(uri) or fake_predict(uri)


def test_publish_promotes_refuses_and_keeps_every_version(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    first = run(registry, tmp_path, "a", right=320)
    assert first.promoted and first.current == "a" * 4 and registry.pointer().current == "a" * 4
    worse = run(registry, tmp_path, "b", right=240)  # 60 against 80 on 400 texts: refused
    assert worse.new and not worse.promoted and worse.outcome == "refuse" and worse.current == "a" * 4
    record = registry.record("b" * 4)
    assert record["gate"]["outcome"] == "refuse" and record["gate"]["current"]["accuracy"] == 80.0
    assert record["gate"]["new"]["accuracy"] == 60.0 and "against current aaaa: worse" in record["gate"]["why"]
    evidence = record["gate"]["comparisons"][0]["evidence"]
    assert evidence["current_only"] == 80 and evidence["new_only"] == 0 and evidence["accuracy"]["high"] < -2
    # each version keeps its labels for the dev set, the gate reads them instead of scoring again
    kept = registry.dev_predictions("a" * 4, record["dev_digest"])
    assert kept is not None and kept["labels"] == fake_predict(str(tmp_path / "m-a-320"))
    better = run(registry, tmp_path, "c", right=340)
    assert better.promoted and registry.pointer().current == "c" * 4
    # the same inputs again: nothing new, nothing evaluated, no version made
    calls: list = []
    again = run(registry, tmp_path, "a", right=320, predict=counting(calls))
    assert not again.new and again.outcome == "promote" and calls == [] and registry.pointer().current == "c" * 4
    assert [r["version"] for r in registry.versions()] == ["a" * 4, "b" * 4, "c" * 4]
    assert (tmp_path / "reg/versions/aaaa/model/config.json").is_file()


def test_a_refusal_is_kept_under_the_dev_set_and_the_settings(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=320)
    assert run(registry, tmp_path, "b", right=240).outcome == "refuse"
    # WHEN the refused version is run again on the same dev set with the same settings
    calls: list = []
    again = run(registry, tmp_path, "b", right=240, predict=counting(calls))
    # THEN it is the same refusal (the CLI exits 4 again), nothing scored
    assert (again.new, again.outcome, calls) == (False, "refuse", []) and "against current aaaa" in again.why
    # WHEN the settings change: decided again, the earlier decision kept beside the new one
    loose = run(registry, tmp_path, "b", right=240, settings=GateSettings(rule=POINT_ESTIMATE, tolerance=25.0),
                predict=counting(calls))
    assert loose.new and loose.promoted and calls  # scored again: the new version and the current one
    assert [d["outcome"] for d in registry.record("b" * 4)["decisions"]] == ["refuse", "promote"]
    # WHEN the dev set changes: decided again too
    run(registry, tmp_path, "c", right=200)  # refused against b on DEV
    calls.clear()
    other = run(registry, tmp_path, "c", right=200, dev=OTHER_DEV,
                predict=lambda uri: calls.append(uri) or fake_predict(uri)[:300])
    assert other.new and calls and len(registry.record("c" * 4)["decisions"]) == 2


def test_two_trainers_at_once_leave_one_current_and_both_versions(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    barrier = threading.Barrier(2)

    waited: list[bool] = []

    def slow_predict(model_uri):  # both score their new version before either moves the pointer
        if "m-" in model_uri and len(waited) < 2:
            waited.append(True)
            barrier.wait(timeout=20)  # a broken barrier fails the thread, and the test below
        return fake_predict(model_uri)

    outcomes = {}
    threads = [threading.Thread(target=lambda v=v, r=r: outcomes.update({v: run(registry, tmp_path, v, r,
                                                                               predict=slow_predict)}))
               for v, r in (("a", 320), ("b", 360))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(outcomes) == {"a", "b"} and not barrier.broken  # both ran, and both met at the barrier
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
        run(registry, tmp_path, "a", right=320)
    monkeypatch.undo()
    assert registry.has("a" * 4) and registry.pointer().current is None  # complete version, old pointer
    # the record and the card do not say promoted: the pointer did not move
    assert registry.record("a" * 4)["gate"]["moved"] is None
    assert "passed the gate (the pointer not yet moved)" in (tmp_path / "reg/versions/aaaa/README.md").read_text()
    with pytest.raises(RegistryError, match=r"has no current.json \(1 version\(s\)\)"):
        registry.resolve(None)
    finished = run(registry, tmp_path, "a", right=320)
    assert finished.new and finished.promoted and registry.pointer().current == "a" * 4
    assert [m["action"] for m in registry.pointer().log] == ["promote"]
    assert registry.record("a" * 4)["gate"]["moved"] and "**promoted:" in (tmp_path / "reg/versions/aaaa/README.md").read_text()


def test_a_move_that_landed_but_whose_reply_was_lost_is_not_made_twice(tmp_path, monkeypatch):
    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=320)
    real_move = Registry.move

    def landed_but_lost(self, seen, action, version, why):  # the write happens; the writer hears "refused"
        assert real_move(self, seen, action, version, why)
        return False

    monkeypatch.setattr(Registry, "move", landed_but_lost)
    calls: list = []
    out = run(registry, tmp_path, "b", right=360, predict=counting(calls))
    monkeypatch.undo()
    # THEN the trainer sees its own version current and stops: no second gate, no second push
    assert out.promoted and out.current == "b" * 4
    assert registry.pointer().stack == ("a" * 4, "b" * 4) and len(registry.pointer().log) == 2
    assert calls == [str(tmp_path / "m-b-360")]  # the new version, once (the current one's labels are kept)
    assert registry.record("b" * 4)["gate"]["moved"]
    # AND a rollback then does what it says
    assert registry.move(registry.pointer(), "rollback", "b" * 4, "by hand")
    assert registry.pointer().current == "a" * 4


def test_running_out_of_races_has_its_own_exit_code(tmp_path, monkeypatch):
    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=320)
    real_move = Registry.move
    rivals = iter(f"r{i}" for i in range(100))

    def always_beaten(self, seen, action, version, why):  # another writer moves it first, every time
        assert real_move(self, seen, "promote", next(rivals), "a rival")
        return False

    monkeypatch.setattr(Registry, "move", always_beaten)
    monkeypatch.setattr(Registry, "model_uri", lambda self, v: str(tmp_path / "m-a-320"))  # the rivals score as a
    with pytest.raises(RegistryRaced) as raised:
        run(registry, tmp_path, "b", right=360)
    assert cli_exit_code(raised.value) == EXIT_RACED == 6 and raised.value.retryable
    assert "recorded, not current" in str(raised.value) and registry.has("b" * 4)
    assert "b" * 4 not in registry.pointer().stack


def test_bad_dev_sets_and_missing_versions_are_one_line(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    other = Examples(("x", "y"), ("a", "c"))
    with pytest.raises(DataError, match="labels c are not the model's \\(a, b\\)"):
        publish(registry, lambda: model(tmp_path, "m", 1), "m", info("a"), other, "dev.jsonl", GateSettings(),
                fake_predict, print)
    with pytest.raises(DataError, match="no texts"):
        publish(registry, lambda: model(tmp_path, "n", 1), "n", info("a"), Examples((), ()), "dev.jsonl",
                GateSettings(), fake_predict, print)
    with pytest.raises(RegistryError, match="holds no model"):
        registry.resolve(None)
    with pytest.raises(RegistryError, match="has no version zzz"):
        registry.resolve("zzz")
    assert split_ref("s3://b/models/news@abc") == ("s3://b/models/news", "abc")
    assert split_ref("s3://b/models/news") == ("s3://b/models/news", None)


def test_a_version_seen_complete_is_not_asked_of_the_store_again(tmp_path, monkeypatch):
    from jobs.storage import LocalStore

    uri = str(tmp_path / "reg")
    run(Registry(uri), tmp_path, "a", 320)
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
    from conftest import check_pointer_moves_only_from_what_was_read

    check_pointer_moves_only_from_what_was_read(f"s3://{s3_env}/models/news")


def test_the_model_card_has_hugging_face_front_matter(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=320)
    run(registry, tmp_path, "b", right=240)
    card = (tmp_path / "reg/versions/aaaa/README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "minilm" and "cluster-and-tune" in front["tags"]
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"accuracy": 80.0, "f1": 80.0}
    body = card.split("---\n", 2)[2]
    for expected in ("`a`, `b`", "| labeled | 40 |", "AMI 0.200", "**promoted: no current version**",
                     'pipeline("text-classification", model="model"'):
        assert expected in body, expected
    assert "probe_head.json" in render_card({**registry.record("a" * 4), "probe": True})
    assert time.time() - registry.record("a" * 4)["created"] < 60
    refused = (tmp_path / "reg/versions/bbbb/README.md").read_text()
    assert "**refused: against current aaaa: worse beyond the tolerance" in refused
    assert "- against current aaaa (refuse): accuracy -20.0 [" in refused and "McNemar p = " in refused
    assert "F1 by label: a -" in refused and "80 broken (negative flips 20.0%)" in refused


def test_the_history_page_shows_every_version_its_figures_and_the_gates_word(tmp_path):
    import xml.etree.ElementTree as ET

    registry = Registry(str(tmp_path / "reg"))
    run(registry, tmp_path, "a", right=320)
    run(registry, tmp_path, "b", right=240)  # refused
    page = (tmp_path / "reg/history.html").read_text()
    assert "current: <b>aaaa</b>; 2 version(s); 1 move(s)" in page
    assert page.index("<td>bbbb</td>") < page.index("<td>aaaa</td>")  # newest first
    assert "<td>60.0</td>" in page and "<td>refused</td>" in page and "against current aaaa: worse" in page
    assert "against current aaaa (refuse): accuracy -20.0 [" in page and "McNemar p = " in page
    assert "80 broken (negative flips 20.0%)" in page and "F1 by label: a -" in page
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    circles = ET.fromstring(svg).findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 4  # accuracy and macro-F1 of each version
    assert [c.get("fill") for c in circles[:2]] == ["#1f77b4", "white"]  # a promoted, b not


def test_a_chain_of_small_losses_stops_at_the_tolerance_below_the_best(tmp_path):
    big = Examples(tuple(f"text {i}" for i in range(2000)), tuple("ab"[i % 2] for i in range(2000)))

    def predict(model_uri: str) -> list[str]:
        import json

        right = json.loads((Path(model_uri) / "config.json").read_text())["right"]
        return [y if i < right else ("b" if y == "a" else "a") for i, y in enumerate(big.labels)]

    def chain(rule: str) -> list:
        registry = Registry(str(tmp_path / f"reg-{rule}"))
        settings = GateSettings(rule=rule, tolerance=2.0)
        return [run(registry, tmp_path, v, right, settings, predict, big)
                for v, right in (("a", 1800), ("b", 1780), ("c", 1760), ("d", 1740))]

    # each version 1 point below the one before it; the best (a) is 90.0
    a, b, c, d = chain(POINT_ESTIMATE)
    assert a.promoted and b.promoted and c.promoted  # c is 2.0 below a: at the tolerance, not beyond
    assert d.outcome == "refuse" and "against best aaaa" in d.why and "against current" not in d.why
    assert d.current == "c" * 4
    a, b, c, d = chain("non-inferiority")
    assert a.promoted and b.promoted  # -1.0 [-1.4, -0.6] against a
    assert c.promoted, c.why  # -1.0 [-1.4, -0.6] against b; -2.0 against the best a: at the floor
    # d: -1.0 against current c, -3.0 [-3.6, -2.4] against the best a: shown to be beyond the floor
    assert d.outcome == "refuse" and d.current == "c" * 4 and "against best aaaa: worse than the best" in d.why, d.why
    assert "against current" not in d.why
