"""The figures the docs quote, tied to the lock they were measured under.

``docs/figures/quickstart.json`` keeps the cells of the README's quickstart table (the
``results.json`` rows a ``make run`` wrote), the date, and the digest of the lock it ran under;
``tests/test_figures.py`` checks that the README's block is what ``ctune report`` prints from
those rows, and that every lock digest quoted in the docs is the lock's now: a change of the
lock fails there until the figures are measured again.

After ``make run`` under a new lock: ``make figures`` (this module's ``record``) writes the file
again from the store; then the README's block and the docs' digests follow (the test says what).

Usage: python -m tests.figures record [STORE]   |   python -m tests.figures digest
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_SPEC = REPO / "experiments" / "quickstart.yaml"
QUICKSTART_FIGURE = REPO / "docs" / "figures" / "quickstart.json"
DIGEST = re.compile(r"\block ([0-9a-f]{12})\b")
"""How the docs quote the lock a figure was measured under: ``lock 1a2b3c4d5e6f``."""


def lock_digest() -> str:
    """The first 12 hex digits of ``sha256sum constraints.txt`` (every locked version and torch's)."""
    return hashlib.sha256((REPO / "constraints.txt").read_bytes()).hexdigest()[:12]


def quickstart_plan():
    """The quickstart spec's plan, its datasets read from the data directory (ids as a run's)."""
    from controller.plan.datasets import prepare_all, resolve_data_dir
    from controller.plan.graph import build_plan
    from controller.plan.spec import load_spec

    spec = load_spec(QUICKSTART_SPEC)
    prepared = prepare_all(spec, resolve_data_dir(spec, None), str(QUICKSTART_SPEC))
    plan = build_plan(spec, {n: p.prefix for n, p in prepared.items()}, {n: p.corpus_prefix for n, p in prepared.items()})
    return spec, plan


def summary_of(figure: dict) -> str:
    """What ``ctune report`` prints of the quickstart from the figure's rows (no store needed)."""
    from controller.report.results import summarize

    spec, plan = quickstart_plan()
    by_step = {row["step"]: row for row in figure["rows"]}
    missing = [c.step for c in plan.cells if c.step not in by_step]
    if missing or len(by_step) != len(plan.cells):
        raise ValueError(f"{QUICKSTART_FIGURE.name} holds other cells than the quickstart plan's "
                         f"({len(missing)} of its {len(plan.cells)} missing)")
    rows = [{**by_step[c.step], "dataset": c.dataset, "column": c.column} for c in plan.cells]
    return summarize(spec, plan, rows, 0, {})


def record(store: Path) -> dict:
    results = json.loads((store / "experiments" / "quickstart" / "report" / "results.json").read_text())
    figure = {"spec": str(QUICKSTART_SPEC.relative_to(REPO)), "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
              "lock": lock_digest(), "rows": results["rows"]}
    QUICKSTART_FIGURE.parent.mkdir(parents=True, exist_ok=True)
    QUICKSTART_FIGURE.write_text(json.dumps(figure, indent=1) + "\n")
    return figure


def main(argv: list[str]) -> int:
    if argv[:1] == ["digest"]:
        print(lock_digest())
        return 0
    if argv[:1] == ["record"]:
        figure = record(Path(argv[1]) if len(argv) > 1 else REPO / "store")
        print(summary_of(figure))
        print(f"wrote {QUICKSTART_FIGURE.relative_to(REPO)} (lock {figure['lock']}, {figure['recorded']})")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
