"""Batch scoring (controller.practice.scoring) on this machine: a registry in a folder, texts in
a folder; which graph runs (controller.models.runtime); and the scoring Job as the cluster gets
it (golden YAML, strict schema). The same on the rig: tests/test_kubernetes.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from controller import cli
from controller.models.registry import Registry, RegistryError
from controller.models.runtime import choose_runtime
from tests.conftest import tiny_onnx_classifier
from tests.test_kube_render import CURRENT, FULL, check_golden

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def onnx_folder(tiny_model, tmp_path_factory) -> Path:
    """A tiny fine-tuned classifier's ONNX folder (as an export step writes it)."""
    return tiny_onnx_classifier(tiny_model, tmp_path_factory.mktemp("clf"))


def publish(registry: Registry, version: str, onnx: Path | None, tmp_path: Path, promote: bool = True,
            accepted: bool = False) -> None:
    model = tmp_path / f"model-{version}"
    model.mkdir()
    (model / "config.json").write_text("{}")
    graphs = {"opset": 18, "agreement": 1.0, "max_difference": 1e-6, "texts": 10,
              "int8": {"accepted": accepted, "gate": {"outcome": "promote" if accepted else "inconclusive", "why": "x"}}}
    record = {"version": version, "created": len(registry.versions()), "labels": ["ham", "spam"],
              **({"onnx": graphs} if onnx else {})}
    registry.publish(version, model, record, "card", None, onnx)
    if promote:
        assert registry.move(registry.pointer(), "promote", version, "test")


def run(*argv: str) -> int:
    return cli.main(["predict", *argv])


def outputs(root: Path) -> dict[str, list[dict]]:
    return {str(p.relative_to(root)): [json.loads(x) for x in p.read_text().splitlines()]
            for p in sorted(root.rglob("*.jsonl"))}


def test_every_file_once_per_version_a_crash_loses_one_file_and_a_promotion_scores_again(onnx_folder, tmp_path,
                                                                                          capsys, monkeypatch):
    from controller.practice import scoring
    from jobs.serving import OnnxClassifier

    registry = Registry(str(tmp_path / "registry"))
    publish(registry, "v1aaaaaaaaaaaaaa", onnx_folder, tmp_path)
    texts, out = tmp_path / "texts", tmp_path / "predictions"
    (texts / "2026-12").mkdir(parents=True)
    (texts / "a.jsonl").write_text("".join(json.dumps({"body": f"text number {i}"}) + "\n" for i in range(5)))
    (texts / "2026-12" / "b.csv").write_text('body,other\n"a, quoted text",1\nsecond,2\n')
    (texts / "c.txt").write_text("one per line\n\nanother line\n")
    (texts / "notes.md").write_text("not a text file")
    # WHEN every file is scored, and one text file of them fails half-way (the run is killed there)
    real = OnnxClassifier.probabilities
    calls = []

    def dies_on_the_second_file(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(OnnxClassifier, "probabilities", dies_on_the_second_file)
    assert run(str(registry.uri), str(texts), "--out", str(out), "--text-field", "body") != 0
    assert list(outputs(out)) == ["v1aaaaaaaaaaaaaa/2026-12/b.csv.jsonl"]  # nothing partial of the second file
    monkeypatch.setattr(OnnxClassifier, "probabilities", real)
    # THEN the next run scores the rest and not the file done
    capsys.readouterr()
    assert run(str(registry.uri), str(texts), "--out", str(out), "--text-field", "body") == 0
    said = capsys.readouterr().err
    assert "version v1aaaaaaaaaaaaaa: 2 file(s) scored (7 texts" in said and "1 scored by it before (skipped)" in said
    assert "scoring with version v1aaaaaaaaaaaaaa, the current version: onnx" in said
    first = outputs(out)
    assert sorted(first) == [f"v1aaaaaaaaaaaaaa/{n}" for n in ("2026-12/b.csv.jsonl", "a.jsonl.jsonl", "c.txt.jsonl")]
    rows = first["v1aaaaaaaaaaaaaa/a.jsonl.jsonl"]
    expected = OnnxClassifier.load(onnx_folder).probabilities([f"text number {i}" for i in range(5)])
    assert [r["text"] for r in rows] == [f"text number {i}" for i in range(5)]
    assert all(r["version"] == "v1aaaaaaaaaaaaaa" and set(r["scores"]) == {"ham", "spam"} for r in rows)
    assert [r["label"] for r in rows] == [["ham", "spam"][i] for i in expected.argmax(1)]
    assert [r["text"] for r in first["v1aaaaaaaaaaaaaa/2026-12/b.csv.jsonl"]] == ["a, quoted text", "second"]
    assert [r["text"] for r in first["v1aaaaaaaaaaaaaa/c.txt.jsonl"]] == ["one per line", "another line"]
    # WHEN run again: nothing is scored; a new file: only it
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert run(str(registry.uri), str(texts), "--out", str(out), "--text-field", "body") == 0
    assert "0 file(s) scored (0 texts), 3 scored by it before (skipped)" in capsys.readouterr().err
    (texts / "d.jsonl").write_text(json.dumps({"body": "new"}) + "\n")
    assert run(str(registry.uri), str(texts), "--out", str(out), "--text-field", "body") == 0
    assert "1 file(s) scored (1 texts" in capsys.readouterr().err
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # WHEN another version is promoted: the next run scores every file with it, beside the first's, and says so
    publish(registry, "v2bbbbbbbbbbbbbb", onnx_folder, tmp_path, accepted=True)
    assert run(str(registry.uri), str(texts), "--out", str(out), "--text-field", "body") == 0
    said = capsys.readouterr().err
    assert "scoring with version v2bbbbbbbbbbbbbb, the current version: onnx-int8, the int8 graph" in said
    assert "predictions by other versions under" in said and "v1aaaaaaaaaaaaaa (kept)" in said
    assert "version v2bbbbbbbbbbbbbb: 4 file(s) scored" in said
    assert len([k for k in outputs(out) if k.startswith("v2bbbbbbbbbbbbbb/")]) == 4
    assert len([k for k in outputs(out) if k.startswith("v1aaaaaaaaaaaaaa/")]) == 4
    # AND a version named scores with it, though not current
    assert run(f"{registry.uri}@v1aaaaaaaaaaaaaa", str(texts), "--out", str(tmp_path / "again"),
               "--text-field", "body") == 0
    assert "not the current one (v2bbbbbbbbbbbbbb)" in capsys.readouterr().err
    assert scoring.count_outputs(scoring.Place.of(str(tmp_path / "again")), "v1aaaaaaaaaaaaaa") == 4


def test_shards_split_the_files_without_overlap(onnx_folder, tmp_path, capsys):
    registry = Registry(str(tmp_path / "registry"))
    publish(registry, "v1aaaaaaaaaaaaaa", onnx_folder, tmp_path)
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(12):
        (texts / f"part-{i:03d}.txt").write_text(f"text {i}\n")
    for shard in ("0/3", "1/3", "2/3"):
        assert run(str(registry.uri), str(texts), "--out", str(tmp_path / "out"), "--shard", shard) == 0
    said = capsys.readouterr().err
    counts = [int(line.split(": ")[1].split(" file")[0]) for line in said.splitlines() if " file(s) scored (" in line]
    assert sum(counts) == 12 and len(counts) == 3 and max(counts) < 12
    assert len(outputs(tmp_path / "out")) == 12


def test_a_bad_file_is_named_and_the_others_scored_and_files_differing_in_extension_are_two(onnx_folder, tmp_path,
                                                                                           capsys):
    registry = Registry(str(tmp_path / "registry"))
    publish(registry, "v1aaaaaaaaaaaaaa", onnx_folder, tmp_path)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.jsonl").write_text('{"text": "fine"}\n{"other": "no text field"}\n')
    (texts / "b.txt").write_text("x\n")
    (texts / "b.csv").write_text("text\ny\nz\n")
    assert run(str(registry.uri), str(texts), "--out", str(tmp_path / "out")) == 2
    said = capsys.readouterr().err
    assert "cannot score texts/a.jsonl: " in said and "missing field 'text'" in said
    assert "2 file(s) scored (3 texts" in said and "1 could not be read" in said
    assert sorted(outputs(tmp_path / "out")) == ["v1aaaaaaaaaaaaaa/b.csv.jsonl", "v1aaaaaaaaaaaaaa/b.txt.jsonl"]


def test_options_of_the_other_mode_and_overlapping_prefixes_are_refused(onnx_folder, tmp_path, capsys):
    registry = Registry(str(tmp_path / "registry"))
    publish(registry, "v1aaaaaaaaaaaaaa", onnx_folder, tmp_path)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x\n")
    cases = [((str(texts / "a.txt"), "--backend", "kubernetes"), "--backend kubernetes: only with --out"),
             ((str(texts / "a.txt"), "--jobs", "3"), "--jobs: only with --out"),
             ((str(texts), "--out", str(tmp_path / "o"), "--output", "x.jsonl"), "--output: with --out"),
             ((str(texts), "--out", str(texts / "predictions")), "lies inside TEXTS"),
             ((str(texts / "sub"), "--out", str(texts)), "lies inside --out"),
             ((str(texts), "--out", str(tmp_path / "o"), "--runtime", "torch"), "--runtime torch is for one file")]
    for argv, message in cases:
        assert run(str(registry.uri), *argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1], (argv, err)


def test_the_int8_graph_labels_a_text_alike_alone_and_among_others(onnx_folder):
    """Dynamic int8 quantization scales activations over the whole input: batched, a text's
    probabilities would depend on its neighbours. Run one at a time, they do not."""
    from jobs.serving import OnnxClassifier

    model = OnnxClassifier.load(onnx_folder, int8=True)
    sample = ["short", "a somewhat longer text about markets and prices", "x " * 60, "the cup final"]
    together = model.probabilities(sample)
    alone = np.vstack([model.probabilities([t]) for t in sample])
    assert np.array_equal(together, alone)
    assert np.array_equal(model.probabilities(sample[::-1])[::-1], together)


def test_a_version_without_a_graph_and_an_empty_prefix_are_one_line_errors(onnx_folder, tmp_path, capsys):
    registry = Registry(str(tmp_path / "registry"))
    publish(registry, "v0oldoldoldoldol", None, tmp_path)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x\n")
    assert run(str(registry.uri), str(texts), "--out", str(tmp_path / "out")) == 2
    assert "has none" in capsys.readouterr().err
    publish(registry, "v1aaaaaaaaaaaaaa", onnx_folder, tmp_path)
    (tmp_path / "empty").mkdir()
    assert run(str(registry.uri), str(tmp_path / "empty"), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no .jsonl, .csv, .txt files there" in err[-1]
    assert run(str(registry.uri), str(texts), "--out", str(tmp_path / "out"), "--shard", "3/2") == 2


def test_which_graph_runs():
    graphs = {"opset": 18, "int8": {"accepted": False, "gate": {"outcome": "refuse", "why": "worse"}}}
    old, refused = {"version": "v0"}, {"version": "v1", "onnx": graphs}
    accepted = {"version": "v2", "onnx": {**graphs, "int8": {"accepted": True, "gate": {"outcome": "promote"}}}}
    assert choose_runtime(old).name == "torch" and "no ONNX graph" in choose_runtime(old).why
    assert choose_runtime(refused).name == "onnx" and "refuse" in choose_runtime(refused).why
    assert choose_runtime(accepted).name == "onnx-int8" and choose_runtime(accepted).int8
    assert choose_runtime(accepted, "onnx").name == "onnx" and choose_runtime(accepted, "torch").name == "torch"
    assert "not accepted" in choose_runtime(refused, "onnx-int8").why
    with pytest.raises(RegistryError, match="runs its model folder"):
        choose_runtime(old, "onnx")
    with pytest.raises(RegistryError, match="no int8 graph"):
        choose_runtime({"version": "v3", "onnx": {"opset": 18}}, "onnx-int8")


def test_the_scoring_job_matches_golden_and_passes_strict_schema_validation(tmp_path):
    from controller.run.kube.config import KubernetesSpec
    from controller.run.kube.render import render_scoring_job

    args = ["predict", "s3://b/models/news@v1", "s3://b/texts", "--out", "s3://b/predictions", "--runtime", "onnx",
            "--text-field", "text", "--shard", "0/2"]
    full = render_scoring_job("ctune-score-v1-abc123-0", "v1-abc123", args, FULL)
    check_golden("scoring-job.yaml", full)
    pod = full["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "cluster-tune-controller:latest" and "nodeSelector" not in pod
    assert "nvidia.com/gpu" not in json.dumps(pod) and pod["automountServiceAccountToken"] is False
    files = []
    for i, manifest in enumerate((full, render_scoring_job("n", "r", args, KubernetesSpec()))):
        path = tmp_path / f"job-{i}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        files.append(str(path))
    validate = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(validate), "--strict", "--quiet", "-k", CURRENT, *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_int8_graph_is_judged_by_the_gate_against_the_fp32_one():
    from controller.models.gate import GateSettings
    from controller.models.publish import onnx_record

    gold = ["a", "b"] * 300
    fp32 = list(gold[:570]) + ["a"] * 30  # 95% right
    check = {"opset": 18, "texts": 600, "agreement": 1.0, "max_difference": 2e-6,
             "dev": {"fp32": {"labels": fp32}, "int8": {"labels": list(fp32)}}}
    said: list[str] = []
    same = onnx_record(check, gold, "v1", "d" * 64, GateSettings(), said.append)
    assert same["int8"]["accepted"] and same["int8"]["gate"]["outcome"] == "promote" and "dev" not in same
    assert "ctune predict uses it" in said[-1] and "labels equal to the model's on 100.00% of 600" in said[0]
    worse = {**check, "dev": {"fp32": {"labels": fp32}, "int8": {"labels": ["a"] * 600}}}  # 50%
    judged = onnx_record(worse, gold, "v1", "d" * 64, GateSettings(), said.append)
    assert not judged["int8"]["accepted"] and judged["int8"]["gate"]["outcome"] == "refuse"
    assert "ctune predict uses the fp32 graph" in said[-1]
    assert choose_runtime({"version": "v1", "onnx": judged}).name == "onnx"
    assert choose_runtime({"version": "v1", "onnx": same}).name == "onnx-int8"
