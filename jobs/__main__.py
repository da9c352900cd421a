"""Entry point of every step: ``python -m jobs <kind> --step <uri of step.json> [--step ...]``.

Several ``--step`` run one after another in this process (a packed Kubernetes Job); steps
already done are skipped, so a retried pod resumes where the last one stopped.
Exit codes: 0 done, 2 a bad input or parameter (retrying will not help), 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import sys

from jobs.data import DataError
from jobs.step import LOG, JobError, run_step, split_step_uri, write_failure
from jobs.storage import StoreError, open_store

KINDS = {"cluster": "jobs.cluster", "intertrain": "jobs.intertrain", "finetune": "jobs.finetune",
         "embed": "jobs.embed", "classic": "jobs.classic", "fit": "jobs.fit", "analyze": "jobs.analyze"}
EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--step", required=True, action="append", help="URI of the step's step.json in the store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = importlib.import_module(KINDS[args.kind]).run
    for uri in args.step:
        code = _run_one(uri, args.kind, handler)
        if code:
            return code
    return 0


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


@contextlib.contextmanager
def _log_to_store(uri: str):
    """With CTUNE_LOG_TO_STORE=1 (set in Kubernetes pods), the step's output is also saved
    in the store as its log.txt, whatever the outcome: pod logs vanish with the pod."""
    if os.environ.get("CTUNE_LOG_TO_STORE") != "1":
        yield
        return
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    old_err, old_out = sys.stderr, sys.stdout
    sys.stderr, sys.stdout = _Tee(old_err, buffer), _Tee(old_out, buffer)
    try:
        yield
    finally:
        sys.stderr, sys.stdout = old_err, old_out
        logging.getLogger().removeHandler(handler)
        root, prefix = split_step_uri(uri)
        with contextlib.suppress(Exception):
            open_store(root).write_bytes(f"{prefix}/{LOG}", buffer.getvalue().encode())


def _run_one(uri: str, kind: str, handler) -> int:
    with _log_to_store(uri):
        try:
            record = run_step(uri, kind, handler)
        except (JobError, DataError) as exc:
            print(f"error: {kind}: {exc}", file=sys.stderr)
            with contextlib.suppress(Exception):
                root, prefix = split_step_uri(uri)
                write_failure(open_store(root), prefix, f"{kind}: {exc}")
            return EXIT_BAD_INPUT
        except StoreError as exc:
            print(f"error: {kind}: {exc}", file=sys.stderr)
            return 1
        print(f"done {kind} {record['id']} in {record['seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
