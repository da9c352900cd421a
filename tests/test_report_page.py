"""The report page of a real run, opened in headless Chromium (Debian's ``chromium``, driven by
Playwright): every figure drawn with a size, every table with its rows, pending cells marked
while the grid is half done; and, meanwhile, a running step's log followed as it grows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pipeline

READ_PAGE = """() => {
  const figures = [...document.querySelectorAll('figure')].map(f => {
    const el = f.querySelector('svg, img');
    const box = el ? el.getBoundingClientRect() : {width: 0, height: 0};
    return {cls: f.className, tag: el ? el.tagName : null, width: box.width, height: box.height,
            natural: el && el.tagName === 'IMG' ? el.naturalWidth : null,
            marks: el && el.tagName !== 'IMG' ? el.querySelectorAll('circle').length : null};
  });
  const tables = [...document.querySelectorAll('table')].map(t => ({
    cls: t.className, rows: t.querySelectorAll('tbody tr').length,
    datasetRows: t.querySelectorAll('tbody tr.dataset').length}));
  return {figures, tables, pending: document.querySelectorAll('[data-pending]').length,
          status: document.querySelector('.run-status').textContent,
          state: [...document.querySelectorAll('table.state tbody tr')].map(r => [...r.cells].map(c => c.textContent))};
}"""


def chromium() -> str:
    found = os.environ.get("CTUNE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the browser test needs Debian's chromium (`make test` installs it; or set CTUNE_CHROMIUM)")
    return found


def open_page(path: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(screenshot), full_page=True)
            seen = page.evaluate(READ_PAGE)
        finally:
            browser.close()
    seen["requests"] = [u for u in requests if not u.startswith(("file:", "data:"))]
    if os.environ.get("CTUNE_SCREENSHOTS"):  # to look at: CTUNE_SCREENSHOTS=folder make test
        shutil.copy(screenshot, Path(os.environ["CTUNE_SCREENSHOTS"]) / screenshot.name)
    return seen


def _figures_drawn(seen: dict) -> None:
    assert seen["figures"], "no figure on the page"
    for f in seen["figures"]:
        assert f["width"] > 0 and f["height"] > 0, f
        if f["tag"] == "IMG":
            assert f["natural"] > 0, f  # the embedded PNG decoded
    assert seen["requests"] == []  # self-contained: nothing fetched


def test_page_of_a_half_done_and_a_finished_grid_in_a_browser(write_spec, tmp_path, ctune, repo):
    spec = write_spec(budgets=[8, 16], analysis={"enabled": True, "permutations": 50},
                      intertrain={"batch_size": 4, "max_length": 32})  # long enough to be followed
    page = tmp_path / "store/experiments/tiny/report/index.html"
    # GIVEN a grid of which only the clustering is done
    half = ctune("run", str(spec), "--only", "cluster")
    assert half.returncode == 0, half.stderr
    assert "report page (rewritten as steps finish): file://" in half.stderr
    # THEN its page shows the state and marks every cell pending
    seen = open_page(page, tmp_path / "half.png")
    _figures_drawn(seen)
    assert "1 of " in seen["status"] and "steps done" in seen["status"]
    state = {row[0]: row[1:] for row in seen["state"]}
    assert state["cluster"] == ["1", "0", "0", "0"] and state["finetune"][3] == "8"  # done, running, failed, to do
    assert seen["pending"] >= 2 * 3  # per dataset and budget: clust's accuracy, gain, error reduction
    table2 = [t for t in seen["tables"] if t["cls"] == "table2"]
    assert len(table2) == 1 and table2[0]["datasetRows"] == 2  # one dataset x two budgets
    assert {t["cls"] for t in seen["tables"] if t["rows"] == 0} == set()

    # WHEN the whole grid runs, while `ctune logs --follow` tails its inter-training
    plan = ctune("plan", str(spec))
    step = next(line.split()[2] for line in plan.stdout.splitlines() if " intertrain " in line)
    run = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", str(spec)], cwd=repo,
                           env={**os.environ, "CTUNE_PROGRESS_S": "0.01", "CTUNE_LOG_FLUSH_S": "0.3"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        followed = ctune("logs", str(spec), step, "--follow")
    finally:
        _, run_err = run.communicate(timeout=600)
    assert run.returncode == 0, run_err
    # THEN what was followed is the step's whole log, its progress lines included
    assert followed.returncode == 0 and f"step {step} is done" in followed.stderr, followed.stderr
    assert "clust inter-training: " in followed.stdout and " batches/s" in followed.stdout
    assert followed.stdout == next((tmp_path / "store/steps/intertrain").glob(f"{step}*/log.txt")).read_text()
    seen = open_page(page, tmp_path / "finished.png")
    # THEN every figure is drawn, with points, and nothing is pending
    _figures_drawn(seen)
    kinds = {f["cls"] for f in seen["figures"]}
    assert {"figure2", "figure4", "tsne"} <= kinds
    assert all(f["marks"] > 0 for f in seen["figures"] if f["cls"] in ("figure2", "figure4"))
    assert seen["pending"] == 0 and seen["status"] == "finished"
    tables = {t["cls"]: t for t in seen["tables"]}
    assert tables["table2"]["datasetRows"] == 2 and tables["tests"]["rows"] == 2  # clust vs bert, per budget
    assert tables["nmi"]["rows"] == 1 and tables["clusters"]["rows"] == 4 and tables["ned"]["rows"] == 1
    assert tables["costs"]["rows"] >= 5
    assert all(t["rows"] > 0 for t in seen["tables"])
    # the JSON twin of the CSV, and the steps' progress lines in their logs
    store = tmp_path / "store"
    assert (store / "experiments/tiny/report/results.json").is_file()
    logs = "".join(p.read_text() for p in store.glob("steps/finetune/*/log.txt"))
    assert re.search(r"fine-tuning: \d+/\d+ batches \(\d+%\), [\d.]+ batches/s, ETA \S+, loss [\d.]+", logs)
    assert re.search(r"evaluating: \d+/60 texts", logs)

