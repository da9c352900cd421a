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


RESULT_LOCKS = ("lock/torch.in", "lock/jobs.txt", "lock/controller.txt")
"""What computes a figure: the steps' packages and torch's pin, and the controller's (the
report). The developers' tools (lock/dev.txt's other packages) move no figure."""


ONNX_PACKAGES = frozenset({"onnx", "onnx-ir", "onnxscript", "onnxruntime", "flatbuffers", "ml-dtypes", "protobuf"})
SERVING_ONLY = {"lock/jobs.txt": ONNX_PACKAGES, "lock/controller.txt": ONNX_PACKAGES | {"tokenizers"}}
"""Per lock, the pins no figure's computation reads: the ONNX export's and runtime's packages
(only ``SERVING_MODULES`` import them; ``test_figures`` checks) and, in the controller's lock,
tokenizers (the controller tokenizes only to run a version's graph, never for a report). A
change of these alone moves no figure, so they are left out of the digest."""
SERVING_MODULES = ("jobs/serving.py", "jobs/lib/onnx_export.py", "jobs/kinds/export.py")


def lock_digest() -> str:
    """The first 12 hex digits of the SHA-256 of :data:`RESULT_LOCKS`, one after the other, each
    without its :data:`SERVING_ONLY` pins."""
    sys.path.insert(0, str(REPO / "lock"))
    try:
        from compile import HEADER, blocks
    finally:
        sys.path.pop(0)
    digest = hashlib.sha256()
    for name in RESULT_LOCKS:
        text = (REPO / name).read_text()
        if name in SERVING_ONLY:
            text = HEADER + "".join(lines for package, lines in blocks(text) if package not in SERVING_ONLY[name])
        digest.update(text.encode())
    return digest.hexdigest()[:12]


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


def other_environments(store: Path) -> list[str]:
    """The quickstart's steps in ``store`` not computed under this installation (a step's id
    does not hash its library versions: after an upgrade, a run of a done grid computes
    nothing, and its cells are of the old lock)."""
    from jobs.contract.environment import installed_versions, of_versions, recorded_keys, restricted

    _, plan = quickstart_plan()
    here = of_versions(installed_versions())
    keys = recorded_keys([here])  # a version the step's record lacks counts as another
    out = []
    for step in plan.steps.values():
        marker = store / step.prefix / "_SUCCESS"
        if not marker.is_file():
            out.append(f"{step.kind} {step.label}: not done")
            continue
        there = of_versions(json.loads(marker.read_text()).get("versions") or {})
        if restricted(there, keys) != restricted(here, keys):
            out.append(f"{step.kind} {step.label}")
    return out


def record(store: Path) -> dict:
    """The figure file from a store's quickstart, refused unless every one of its steps is done
    under this installation (and so under the lock it was installed from)."""
    stale = other_environments(store)
    if stale:
        raise SystemExit(f"error: {len(stale)} quickstart step(s) not computed under this installation ("
                         f"{'; '.join(stale[:3])}): `ctune run {QUICKSTART_SPEC.relative_to(REPO)} --redo-older-env` first")
    results = json.loads((store / "experiments" / "quickstart" / "report" / "results.json").read_text())
    figure = {"spec": str(QUICKSTART_SPEC.relative_to(REPO)), "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
              "lock": lock_digest(), "rows": results["rows"]}
    summary_of(figure)  # the quickstart's cells, every one
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
