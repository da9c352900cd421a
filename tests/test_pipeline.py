"""The whole local pipeline on a tiny spec, through the real CLI and job processes."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from jobs.lib.models import ACCELERATOR_ENV, accelerator
from jobs.storage import open_store

pytestmark = pytest.mark.pipeline


def test_run_report_and_rerun(write_spec, tmp_path, ctune, committed, results):
    # GIVEN a tiny spec: 1 clustering, 1 inter-training, 2 settings x 1 budget x 2 repetitions = 6 steps
    spec = write_spec()
    store = tmp_path / "store"
    # WHEN it runs
    first = ctune("run", str(spec), "--jobs", "2")
    # THEN every step is done, the report has one row per cell, and the summary is printed
    assert first.returncode == 0, first.stderr
    assert len(committed(store)) == 6
    rows = results(store / "experiments/tiny/report/results.csv")
    assert sorted((r["setting"], r["repetition"]) for r in rows) == [
        ("bert", "0"), ("bert", "1"), ("clust", "0"), ("clust", "1")]
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and 0.0 <= float(r["macro_f1"]) <= 1.0
        assert r["dataset"] == "ag_news" and r["budget"] == "16"
    assert "| ag_news | 16 |" in first.stdout and "NMI of the clusters" in first.stdout
    # each step keeps its log beside it
    assert all((store / prefix / "log.txt").is_file() for prefix in committed(store))

    # WHEN it runs again, nothing is executed
    before = committed(store)
    second = ctune("run", str(spec))
    assert second.returncode == 0, second.stderr
    assert "nothing to run: all 6 steps of tiny are done" in second.stderr
    assert committed(store) == before
    plan = ctune("plan", str(spec))
    assert "6 steps: 6 done, 0 to run" in plan.stdout


def test_same_sample_for_every_setting_and_head_dropped(write_spec, tmp_path, ctune, committed):
    spec = write_spec(repetitions=1)
    assert ctune("run", str(spec)).returncode == 0
    store = tmp_path / "store"
    samples = {}
    for m in committed(store).values():
        if m["kind"] == "finetune":
            prefix = store / "steps/finetune" / m["id"]
            setting = "clust" if "encoder" in m["inputs"] else "bert"
            samples[setting] = json.loads((prefix / "sample.json").read_text())["indices"]
            metrics = json.loads((prefix / "metrics.json").read_text())
            assert set(metrics["per_class"]) == {"Business", "Sci/Tech", "Sports", "World"}
    assert samples["bert"] == samples["clust"] and len(samples["bert"]) == 16
    # the inter-trained checkpoint is an encoder without the cluster head
    from safetensors import safe_open

    inter = next(store.glob("steps/intertrain/*/model/model.safetensors"))
    with safe_open(str(inter), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("classifier" in k for k in keys)
    config = json.loads((inter.parent / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    clusters = json.loads(next(store.glob("steps/cluster/*/clusters.json")).read_text())
    assert sum(clusters["sizes"]) == 240 and 0.0 <= clusters["nmi_with_gold"] <= 1.0


def test_killed_run_resumes_without_redoing_finished_steps(write_spec, tmp_path, ctune, ctune_background,
                                                          committed):
    spec = write_spec(repetitions=3)
    store = tmp_path / "store"
    proc = ctune_background("run", str(spec), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until some but not all steps are done, then kill the controller hard
    deadline = time.time() + 600
    while len(committed(store)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = committed(store)
    assert 3 <= len(finished) < 8, "the kill should land mid-run"
    time.sleep(1.0)  # a child would die with its parent; give it time to have done so
    assert committed(store) == finished, "no orphan job may go on after the controller died"

    again = ctune("run", str(spec))
    assert again.returncode == 0, again.stderr
    after = committed(store)
    assert len(after) == 8
    for prefix, record in finished.items():
        assert after[prefix] == record, f"{prefix} was redone"
    assert f"({len(finished)} already done)" in again.stderr


def test_s3_store_gives_the_same_results_as_local(write_spec, tmp_path, s3_env, ctune, results):
    local = write_spec(settings=["nb", "clusters"], repetitions=1, budgets=[16])
    assert ctune("run", str(local)).returncode == 0
    remote = ctune("run", str(local), "--store", f"s3://{s3_env}/exp")
    assert remote.returncode == 0, remote.stderr
    s3 = open_store(f"s3://{s3_env}/exp")
    remote_rows = list(csv.DictReader(s3.read_bytes("experiments/tiny/report/results.csv").decode().splitlines()))
    local_rows = results(tmp_path / "store/experiments/tiny/report/results.csv")
    drop = ("train_s", "eval_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in remote_rows] == \
        [{k: v for k, v in r.items() if k not in drop} for r in local_rows]
    assert any(k.endswith("/_SUCCESS") for k in s3.list("steps"))
    # the page opens from the bucket: a link without credentials, served as HTML
    shown = ctune("report", str(local), "--store", f"s3://{s3_env}/exp", "--open")
    assert shown.returncode == 0, shown.stderr
    link = re.search(r"open (http\S+index\.html\S*) in a browser", shown.stderr)
    assert link, shown.stderr
    with urllib.request.urlopen(link.group(1), timeout=30) as page:
        assert page.headers["Content-Type"].startswith("text/html")
        assert b"<h1>tiny</h1>" in page.read()
    # and from a folder: opened with the user's browser ($BROWSER), else its address printed
    opened = ctune("report", str(local), "--open", env={"BROWSER": "true"})
    assert opened.returncode == 0 and "opened file://" in opened.stderr and "index.html" in opened.stderr
    refused = ctune("report", str(local), "--open", env={"BROWSER": "false"})
    assert refused.returncode == 0 and re.search(r"open file://\S+index\.html in a browser", refused.stderr)


def test_failing_step_is_reported_and_blocks_its_dependents(write_spec, tmp_path, ctune):
    # a model folder that passes the checks before the run (a config, whole weights: an empty
    # safetensors file) but cannot be loaded: every job using it fails with its error shown
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (broken / "model.safetensors").write_bytes((2).to_bytes(8, "little") + b"{}")
    result = ctune("run", str(write_spec(model=str(broken), repetitions=1)))
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "cannot load model" in result.stderr
    assert "not run because of them" in result.stderr
    store = tmp_path / "store"
    assert not list(store.glob("steps/finetune/*/_SUCCESS"))
    assert list(store.glob("steps/cluster/*/_SUCCESS"))  # independent steps still complete
    # the report page lists the failed steps with their one-line error and a link to their log
    page = (store / "experiments/tiny/report/index.html").read_text()
    failed = page[page.index('<ul class="failed">'):]
    assert "cannot load model" in failed and 'href="../../../steps/intertrain/' in failed
    assert "failed" in page[page.index('class="run-status"'):][:200]


def test_cluster_sampling_and_cluster_only_classifier(write_spec, tmp_path, ctune, results):
    spec = write_spec(settings=["nb", "clusters"], sampling=["random", "cluster"], repetitions=2,
                      clustering={"n_clusters": 8, "n_init": 2, "max_iter": 5})
    result = ctune("run", str(spec))
    assert result.returncode == 0, result.stderr
    rows = results(tmp_path / "store/experiments/tiny/report/results.csv")
    assert sorted({(r["setting"], r["sampling"]) for r in rows}) == [
        ("clusters", "cluster"), ("nb", "cluster"), ("nb", "random")]
    assert "| ag_news | 16 |" in result.stdout and "nb [cluster sample]" in result.stdout
    store = tmp_path / "store"
    assignments = json.loads(next(store.glob("steps/cluster/*/assignments.json")).read_text())["labels"]
    for r in rows:
        sample = json.loads((store / "steps/classic" / r["step"] / "sample.json").read_text())["indices"]
        spread = len({assignments[i] for i in sample})
        if r["sampling"] == "cluster":
            assert spread == 8  # every cluster is represented


def test_dense_clustering_of_encoder_embeddings(write_spec, tmp_path, ctune):
    spec = write_spec(settings=["clusters"], repetitions=1,
                      clustering={"method": "hartigan", "n_clusters": 6, "n_init": 2, "max_iter": 5})
    result = ctune("run", str(spec))
    assert result.returncode == 0, result.stderr
    clusters = json.loads(next((tmp_path / "store").glob("steps/cluster/*/clusters.json")).read_text())
    assert clusters["method"] == "hartigan" and sum(clusters["sizes"]) == 240 and min(clusters["sizes"]) > 0
    assert clusters["nmi_with_gold"] is not None and clusters["top_terms"]["0"]


@pytest.mark.parametrize("choices", ["auto", "gpu"])
def test_packed_cells_give_the_same_results_as_one_process_each(write_spec, tmp_path, ctune, results, choices):
    # GIVEN a tiny grid with fine-tune and probe cells, run with this device's choices or a
    # GPU's (static shapes, 512-text evaluation, fused Adam, bf16: see jobs.lib.models)
    spec = write_spec(settings=["bert", "clust", "probe"], repetitions=2)
    alone, packed = tmp_path / "alone", tmp_path / "packed"
    env = {ACCELERATOR_ENV: choices}
    # WHEN it runs with one process per cell, and with the cells of each start packed
    first = ctune("run", str(spec), "--store", str(alone), "--pack", "1", env=env)
    second = ctune("run", str(spec), "--store", str(packed), "--pack", "8", env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for root in (alone, packed):
        recorded = {json.loads(m.read_text())["accelerator"] for m in root.glob("steps/*/*/metrics.json")
                    if "accelerator" in json.loads(m.read_text())}
        assert recorded == {accelerator(choices).describe()}
    # THEN every cell's result is the same (timings aside) and its predictions byte for byte
    timing = ("train_s", "eval_s")
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in results(root / "experiments/tiny/report/results.csv")]
            for root in (alone, packed)]
    assert rows[0] == rows[1] and len(rows[0]) == 6
    for r in rows[0]:
        kind = "classic" if r["setting"] == "probe" else "finetune"
        assert (alone / "steps" / kind / r["step"] / "predictions.jsonl").read_bytes() == \
            (packed / "steps" / kind / r["step"] / "predictions.jsonl").read_bytes()
    assert first.stderr.count("  ... finetune") == 4 and "more cell(s)" not in first.stderr
    assert second.stderr.count("  ... finetune") == 2  # 2 packs (bert, clust) of 2 cells
    assert second.stderr.count("(+1 more cell(s) in this process)") == 3  # and the probes' pack


def test_two_controllers_on_one_store_compute_each_step_once(write_spec, tmp_path, ctune_background, committed,
                                                            results):
    # GIVEN the same spec started twice on one store, the second a moment after the first
    spec = write_spec(repetitions=3)
    store = tmp_path / "store"
    first = ctune_background("run", str(spec), "--pack", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    second = ctune_background("run", str(spec), "--pack", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    outs = [p.communicate(timeout=900) for p in (first, second)]
    # THEN both finish cleanly with the whole grid
    assert first.returncode == 0 and second.returncode == 0, [o[1][-2000:] for o in outs]
    done = committed(store)
    assert len(done) == 8
    # AND no step was computed twice: one claim generation each, and no output rewritten after _SUCCESS
    for prefix, record in done.items():
        generations = sorted(p.name for p in (store / prefix / "_claims").iterdir())
        assert generations == ["00000000"], f"{prefix} claimed {len(generations)} times"
        assert record["claim"] == 0
        committed_at = (store / prefix / "_SUCCESS").stat().st_mtime
        late = [p.name for p in (store / prefix).rglob("*") if p.is_file() and p.stat().st_mtime > committed_at
                and p.name != "log.txt" and "_claims" not in p.parts]
        assert not late, f"{prefix}: {late} written after its commit"
    # (both set out to run the whole grid: they overlapped)
    assert all("running 8 of 8 steps (0 already done)" in err for _, err in outs)
    assert len(results(store / "experiments/tiny/report/results.csv")) == 6


def test_corrupted_artifacts_are_found_uncommitted_and_redone(write_spec, tmp_path, ctune, committed, results):
    # GIVEN a finished tiny grid
    spec = write_spec()
    store = tmp_path / "store"
    assert ctune("run", str(spec)).returncode == 0
    before = committed(store)
    report = store / "experiments/tiny/report/results.csv"
    original = sorted((r["setting"], r["repetition"], r["accuracy"]) for r in results(report))
    by_kind = {}
    for prefix, record in before.items():
        by_kind.setdefault(record["kind"], []).append(prefix)
    encoder = store / by_kind["intertrain"][0] / "model/model.safetensors"
    cell = store / sorted(by_kind["finetune"])[0]
    clusters = store / by_kind["cluster"][0]
    staged = next(store.glob("datasets/ag_news-*/train.jsonl"))
    # WHEN files under intact commit records are damaged four ways
    data = bytearray(encoder.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of the weights: same size
    encoder.write_bytes(bytes(data))
    metrics = json.loads((cell / "metrics.json").read_text())
    (cell / "metrics.json").write_text(json.dumps({**metrics, "accuracy": 0.99}))  # an edited result
    (cell / "predictions.jsonl").unlink()  # a lost file
    staged.write_text("\n".join(staged.read_text().splitlines()[:140]) + "\n")  # a cut dataset
    (clusters / "assignments.json").write_text("{")  # garbage
    # THEN the cheap check finds all but the flipped bit, the deep one that too; each uncommits what it found
    cheap = ctune("verify", str(spec))
    assert cheap.returncode == 1 and "3 corrupt" in cheap.stderr, cheap.stderr  # dataset, clusters, cell
    deep = ctune("verify", str(spec), "--deep")
    assert deep.returncode == 1 and "1 corrupt" in deep.stderr, deep.stderr
    assert not (cell / "_SUCCESS").exists() and (cell / "_CORRUPT").exists()
    # AND the next run computes exactly those again, with the same results as before
    again = ctune("run", str(spec))
    assert again.returncode == 0, again.stderr
    after = committed(store)
    redone = {p for p in after if after[p] != before.get(p)}
    assert redone == {str(cell.relative_to(store)), str(clusters.relative_to(store)),
                      by_kind["intertrain"][0]}, redone
    assert sorted((r["setting"], r["repetition"], r["accuracy"]) for r in results(report)) == original
    assert ctune("verify", str(spec), "--deep").returncode == 0


def test_a_run_checks_what_it_reads_and_invalidate_takes_steps_back(write_spec, tmp_path, ctune, committed):
    spec = write_spec()
    store = tmp_path / "store"
    assert ctune("run", str(spec)).returncode == 0
    before = committed(store)
    encoder = next(p for p, r in before.items() if r["kind"] == "intertrain")
    clust_cells = [p for p, r in before.items() if r["kind"] == "finetune" and r["inputs"].get("encoder") == encoder]
    # WHEN the encoder's config is edited and its cells are taken back
    config = store / encoder / "model/config.json"
    config.write_text(config.read_text().replace("}", ', "edited": true}', 1))
    cell_id = clust_cells[0].rsplit("/", 1)[-1]
    taken = ctune("invalidate", str(spec), cell_id[:10])
    assert taken.returncode == 0 and "invalidated 1 step(s)" in taken.stderr, taken.stderr
    assert not (store / clust_cells[0]).exists()
    # THEN the run that recomputes the cell first finds the encoder it reads corrupt and redoes it too
    again = ctune("run", str(spec))
    assert again.returncode == 0, again.stderr
    assert f"warning: {encoder} is corrupt" in again.stderr
    after = committed(store)
    assert {p for p in after if after[p] != before.get(p)} == {encoder, clust_cells[0]}
    # AND invalidating the encoder takes back everything computed from it
    taken = ctune("invalidate", str(spec), encoder.rsplit("/", 1)[-1])
    assert f"invalidated {1 + len(clust_cells)} step(s)" in taken.stderr, taken.stderr


def test_two_controllers_on_one_s3_store_compute_each_step_once(write_spec, s3_env, ctune_background):
    # GIVEN the same spec started twice on one S3 store (claims by conditional PUT)
    from jobs.storage import open_store

    spec = write_spec(repetitions=3, store=f"s3://{s3_env}/twice")
    procs = []
    for _ in range(2):
        procs.append(ctune_background("run", str(spec), "--pack", "1", stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
        time.sleep(1.5)
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert all("running 8 of 8 steps (0 already done)" in err for _, err in outs)
    # THEN each committed step was claimed, and so computed, once
    store = open_store(f"s3://{s3_env}/twice")
    markers = [k for k in store.list("steps") if k.endswith("/_SUCCESS")]
    assert len(markers) == 8
    for marker in markers:
        prefix = marker.rsplit("/", 1)[0]
        claims = [k for k in store.list(f"{prefix}/_claims")]
        assert [k.rsplit("/", 1)[-1] for k in claims] == ["00000000"], f"{prefix}: {claims}"
        assert json.loads(store.read_bytes(marker))["claim"] == 0
