"""The docs' figures follow the lock: the README's quickstart block is what `ctune report` prints
from the committed cells, and each lock digest the docs quote is the lock's now."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO
from figures import DIGEST, QUICKSTART_FIGURE, lock_digest, summary_of

pytestmark = pytest.mark.unit


def readme_block() -> tuple[str, list[str]]:
    """The README's quickstart paragraph (what precedes the block) and the block's lines."""
    readme = (REPO / "README.md").read_text()
    found = re.search(r"`make run` runs AG News(?:.*\n)*?```\n((?:.*\n)*?)```", readme)
    assert found, "README.md has no quickstart block"
    return found.group(0), found.group(1).splitlines()


def test_the_readme_quickstart_block_is_what_ctune_report_prints_from_the_committed_cells():
    figure = json.loads(QUICKSTART_FIGURE.read_text())
    summary = summary_of(figure).splitlines()
    paragraph, block = readme_block()
    table = [line for line in block if line.startswith("|")]
    assert len(table) >= 3
    start = summary.index(table[0])
    assert summary[start:start + len(table)] == table, "README.md's quickstart table is not the report's"
    assert not summary[start + len(table)].startswith("|"), "README.md's quickstart table lacks rows"
    assert block[-1].startswith("report: file://") and block[-1].endswith("/experiments/quickstart/report/index.html")
    # the paragraph names the date and the lock the figure was measured under
    assert f"lock {figure['lock']}" in paragraph and figure["recorded"] in paragraph


def test_the_quickstart_figure_was_measured_under_this_lock():
    assert json.loads(QUICKSTART_FIGURE.read_text())["lock"] == lock_digest(), (
        "the lock moved since docs/figures/quickstart.json was recorded: make run, make figures, then the docs")


def test_every_lock_the_docs_quote_is_this_one():
    quoted = {f"{path.relative_to(REPO)}: lock {d}" for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]
              for d in DIGEST.findall(path.read_text())}
    assert quoted, "no figure in the docs names the lock it was measured under"
    assert {q for q in quoted if not q.endswith(lock_digest())} == set(), "re-measure these under the lock"


def test_a_store_of_another_environment_is_not_recorded(tmp_path):
    from figures import other_environments, quickstart_plan

    _, plan = quickstart_plan()
    for step in plan.steps.values():
        (tmp_path / step.prefix).mkdir(parents=True)
        (tmp_path / step.prefix / "_SUCCESS").write_text(json.dumps({"versions": {"transformers": "0.0.1"}}))
    stale = other_environments(tmp_path)
    assert len(stale) == len(plan.steps) and stale[0] == "cluster ag_news"
    from jobs.contract.environment import installed_versions

    for step in plan.steps.values():
        (tmp_path / step.prefix / "_SUCCESS").write_text(json.dumps({"versions": installed_versions()}))
    assert other_environments(tmp_path) == []
    # a record that names fewer versions than this installation has is not taken as of it
    fewer = {k: v for k, v in installed_versions().items() if k != "tokenizers"}
    (tmp_path / plan.steps[next(iter(plan.steps))].prefix / "_SUCCESS").write_text(json.dumps({"versions": fewer}))
    assert other_environments(tmp_path) == ["cluster ag_news"]


def test_a_figure_of_other_cells_is_refused():
    figure = json.loads(QUICKSTART_FIGURE.read_text())
    figure["rows"] = figure["rows"][1:]
    with pytest.raises(ValueError, match="holds other cells than the quickstart plan's"):
        summary_of(figure)


def test_the_pins_left_out_of_the_digest_are_read_by_no_figure():
    """The ONNX packages are imported only by the export step and the ONNX runtime; the controller
    reaches tokenizers only through that runtime (and the jobs through transformers, whose pin,
    in the jobs' lock, is in the digest)."""
    import ast

    from figures import ONNX_PACKAGES, SERVING_MODULES

    modules = {p.replace("-", "_") for p in ONNX_PACKAGES} | {"google"}
    importers: dict[str, set[str]] = {}
    for path in [*REPO.glob("controller/**/*.py"), *REPO.glob("jobs/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                if top in modules or top == "tokenizers":
                    importers.setdefault(top, set()).add(str(path.relative_to(REPO)))
    onnx = {m for top, found in importers.items() if top != "tokenizers" for m in found}
    assert onnx and onnx <= set(SERVING_MODULES), onnx
    assert importers.get("tokenizers", set()) <= set(SERVING_MODULES), importers.get("tokenizers")
