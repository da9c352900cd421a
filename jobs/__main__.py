"""Entry point of every step: ``python -m jobs <kind> --step <uri of step.json> [--step ...]``.

Several ``--step`` run one after another in this process (a packed Kubernetes Job); steps
already done are skipped, so a retried pod resumes where the last one stopped.
Exit codes: 0 done, 2 a bad input or parameter (retrying will not help), 1 anything else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from jobs.data import DataError
from jobs.step import JobError, run_step
from jobs.storage import StoreError

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
        try:
            record = run_step(uri, args.kind, handler)
        except (JobError, DataError) as exc:
            print(f"error: {args.kind}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except StoreError as exc:
            print(f"error: {args.kind}: {exc}", file=sys.stderr)
            return 1
        print(f"done {args.kind} {record['id']} in {record['seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
