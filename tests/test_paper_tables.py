"""Table 2 (gain, error reduction, group averages), Figure 4's points, the cost table and the
page's pending marks, against values worked out by hand on a small fixed table."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest

from controller.plan.graph import Cell
from controller.report.html import DatasetDetail, Page, render, render_table2
from controller.report.page import results_json
from controller.report.paper_tables import costs, dataset_group, nmi_points, planned_counts, table2
from controller.run.runstate import RunState, StepState
from jobs.contract.progress import ProgressRecord

pytestmark = pytest.mark.unit


def _rows(dataset: str, column: str, accuracies: list[float], budget: int = 64) -> list[dict]:
    return [{"dataset": dataset, "column": column, "budget": budget, "repetition": i, "copy": 0, "accuracy": a}
            for i, a in enumerate(accuracies)]


# three datasets, two topical and one not; bert and clust; each cell mean by hand:
#   A (topical):     bert 0.50, 0.60 -> 55.0   clust 0.70, 0.80 -> 75.0   gain +20.0  ER 20/45 = 44.44%
#   B (topical):     bert 0.80, 0.90 -> 85.0   clust 0.85, 0.95 -> 90.0   gain  +5.0  ER 5/15  = 33.33%
#   C (non-topical): bert 0.90, 0.90 -> 90.0   clust 0.85, 0.85 -> 85.0   gain  -5.0  ER -5/10 = -50%
ROWS = (_rows("A", "bert", [0.5, 0.6]) + _rows("A", "clust", [0.7, 0.8]) + _rows("B", "bert", [0.8, 0.9])
        + _rows("B", "clust", [0.85, 0.95]) + _rows("C", "bert", [0.9, 0.9]) + _rows("C", "clust", [0.85, 0.85]))
DATASETS = [("A", "topical"), ("B", "topical"), ("C", "non-topical")]
PLANNED = {(d, 64, c): 2 for d, _ in DATASETS for c in ("bert", "clust")}


def test_gain_and_error_reduction_per_dataset_and_group_average():
    rows = table2(ROWS, DATASETS, [64], ["bert", "clust"], "bert", PLANNED)
    by_name = {r.dataset: r for r in rows}
    assert [r.dataset for r in rows] == ["A", "B", "C", "topical average"]  # one dataset: no average
    a = by_name["A"]
    assert a.baseline.mean == pytest.approx(55.0) and a.cells[0].mean == pytest.approx(75.0)
    assert a.cells[0].gain == pytest.approx(20.0) and a.cells[0].error_reduction == pytest.approx(100 * 20 / 45)
    assert a.baseline.sem == pytest.approx(5.0)  # SEM of 50 and 60: sd 7.07 / sqrt 2
    assert by_name["C"].cells[0].gain == pytest.approx(-5.0)
    assert by_name["C"].cells[0].error_reduction == pytest.approx(-50.0)
    topical = by_name["topical average"]
    assert topical.datasets == 2 and topical.baseline.mean == pytest.approx(70.0)
    assert topical.cells[0].mean == pytest.approx(82.5)
    assert topical.cells[0].gain == pytest.approx(12.5)
    assert topical.cells[0].error_reduction == pytest.approx((100 * 20 / 45 + 100 * 5 / 15) / 2)


def test_pending_cells_are_marked_and_averages_count_only_what_is_done():
    # B's clust has 1 of 2 cells done and C's none
    rows = [r for r in ROWS if not (r["dataset"] == "B" and r["column"] == "clust" and r["repetition"] == 1)
            and not (r["dataset"] == "C" and r["column"] == "clust")]
    table = table2(rows, DATASETS, [64], ["bert", "clust"], "bert", PLANNED)
    b = next(r for r in table if r.dataset == "B").cells[0]
    assert b.pending and b.done == 1 and b.mean == pytest.approx(85.0) and b.gain == pytest.approx(0.0)
    c = next(r for r in table if r.dataset == "C").cells[0]
    assert c.pending and c.mean is None and c.gain is None
    html = render_table2("bert", table)
    # marked: B's partial accuracy; C's accuracy, gain and error reduction
    assert html.count('data-pending="1"') == 1 + 3
    assert "pending (0/2)" in html and "(1/2)" in html


def test_groups_default_to_the_papers_for_shipped_datasets():
    assert dataset_group("ag_news", None) == "topical" and dataset_group("sms_spam", None) == "non-topical"
    assert dataset_group("my_tickets", None) == "other" and dataset_group("ag_news", "mine") == "mine"


def test_figure4_points_take_the_smallest_budget_and_the_same_protocol():
    rows = (_rows("A", "bert (strong)", [0.5, 0.6], 16) + _rows("A", "clust (strong)", [0.7, 0.8], 16)
            + _rows("A", "bert (strong)", [0.9, 0.9], 64) + _rows("A", "clust (strong)", [0.9, 0.9], 64)
            + _rows("A", "clust", [0.1, 0.1], 16))
    for r in rows:
        r["sample_ami"] = 0.2 if r["repetition"] == 0 else 0.4
    points = nmi_points(rows, {"A": 0.33, "B": None}, [16, 64], ["bert (strong)", "clust (strong)", "clust"],
                        "bert (strong)")
    assert len(points) == 1
    assert points[0].dataset == "A" and points[0].nmi == 0.33
    assert points[0].gain == pytest.approx(20.0) and points[0].ami == pytest.approx(0.3)
    assert nmi_points(rows, {"A": 0.33}, [16], ["bert (strong)", "probe"], "bert (strong)") == []


def test_costs_sum_seconds_per_kind_and_device():
    records = [{"kind": "finetune", "seconds": 10.0, "device": "gpu"}, {"kind": "finetune", "seconds": 5.5, "device": "gpu"},
               {"kind": "cluster", "seconds": 30.0, "device": "cpu"}, {"kind": "finetune", "seconds": 2.0}]
    got = {(c.kind, c.device): (c.steps, c.seconds) for c in costs(records)}
    assert got == {("finetune", "gpu"): (2, 15.5), ("cluster", "cpu"): (1, 30.0), ("finetune", "unrecorded"): (1, 2.0)}


def test_planned_counts_per_dataset_budget_and_column():
    cells = [Cell("A", "clust", 64, r, f"s{r}{c}", protocol="strong", copy=c) for r in range(3) for c in range(2)]
    assert planned_counts(cells) == {("A", 64, "clust (strong)"): 6}


def test_results_json_keeps_numbers_as_numbers():
    report = SimpleNamespace(rows=tuple({**r, "setting": r["column"], "protocol": "paper", "step": "x"} for r in ROWS[:2]),
                             missing=3)
    data = json.loads(results_json(SimpleNamespace(name="t"), report))
    assert data["experiment"] == "t" and data["cells_not_done"] == 3 and len(data["rows"]) == 2
    assert data["rows"][0]["accuracy"] == 0.5 and data["rows"][0]["macro_f1"] is None


def _page(state: RunState) -> Page:
    return Page("demo", "minilm", "/s", state, {"bert": table2(ROWS, DATASETS, [64], ["bert", "clust"], "bert", PLANNED)},
                {"bert": []}, b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>", None,
                (DatasetDetail("A", "topical", 0.5, (3, 2), (("0", 3, ("stock", "market")),)),), (), "# summary")


def test_page_shows_running_and_failed_steps_with_their_logs():
    running = StepState("finetune", "abc", "A bert b64 r0", "running", log="steps/finetune/abc/log.txt",
                        progress=ProgressRecord("fine-tuning", 30, 120, "batches", 3.0, 30.0, 0.812, 0.0))
    failed = StepState("cluster", "def", "B", "failed", "JobError: too few texts", "steps/cluster/def/log.txt")
    state = RunState({"finetune": Counter({"done": 3, "running": 1}), "cluster": Counter({"failed": 1})},
                     (failed,), (running,))
    html = render(_page(state))
    assert "fine-tuning: 30/120 batches (25%), 3 batches/s, ETA 30s, loss 0.812" in html
    assert "JobError: too few texts" in html and 'href="../../../steps/cluster/def/log.txt"' in html
    assert "3 of 5 steps done, 1 running, 1 failed" in html
    assert "stock, market" in html and "nothing to draw yet" in html  # no Figure 4 without clusters' NMI
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from a network


def test_a_grid_without_bert_says_why_table2_is_empty():
    page = _page(RunState({}, ()))
    html = render(Page(**{**page.__dict__, "table2": {}, "tests": {}}))
    assert "no <code>bert</code> setting to take gains against" in html and 'class="table2"' not in html
