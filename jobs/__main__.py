"""Entry point of every step: ``python -m jobs <kind> --step <uri of step.json> [--step ...]``.

Several ``--step`` (a pack of cells) run one after another in this process, reading the
encoder and the token ids once; ``--workers N`` splits them over N processes instead (small
models leave a GPU mostly idle). Steps already done are skipped, so a retried pod resumes
where the last one stopped; a step with a bad input is reported and the next one still runs.
Exit codes: see ``jobs.contract.errors`` (0 done, 2 not retryable, 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator

from jobs.contract.errors import EXIT_BAD_INPUT, EXIT_CLAIMED, EXIT_FAILED, EXIT_OK, Claimed, CtuneError, job_exit_code, redact
from jobs.contract.kinds import load_plugins, step_kind, step_kinds
from jobs.contract.steps import LOG, is_done, split_step_uri, write_failure
from jobs.lib import livelog
from jobs.lib.runner import Handler, run_step
from jobs.storage import open_store

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a deleted pod; the local controller gone): stop with every process this job
    started (sIB's worker pool would otherwise outlive it), when it leads its process group."""
    if os.getpid() == os.getpgrp() and os.getpid() != 1:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    load_plugins()
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    parser.add_argument("kind", choices=step_kinds())
    parser.add_argument("--step", required=True, action="append", help="URI of the step's step.json in the store")
    parser.add_argument("--workers", type=int, default=1, help="processes to share the steps (default 1)")
    args = parser.parse_args(argv)
    if args.workers > 1 and len(args.step) > 1:
        return _run_workers(args.kind, args.step, args.workers)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    handler = importlib.import_module(step_kind(args.kind).job_module).run
    worst = EXIT_OK
    for uri in args.step:
        code = _run_one(uri, args.kind, handler)
        if code == EXIT_BAD_INPUT:
            worst = code  # reported in the store (_FAILED); the pack's other cells may be fine
        elif code == EXIT_CLAIMED:
            worst = worst or code  # another process computes it; the pack's other cells go on
        elif code:
            return code
    return worst


def _run_workers(kind: str, steps: list[str], workers: int) -> int:
    """Every ``workers``-th step to each of ``workers`` processes; the worst exit code."""
    env = dict(os.environ)
    threads = max(1, int(env.get("CTUNE_THREADS") or os.cpu_count() or 1) // workers)
    env["CTUNE_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    procs = [subprocess.Popen([sys.executable, "-m", "jobs", kind, *[a for uri in steps[w::workers]
                                                                      for a in ("--step", uri)]], env=env)
             for w in range(workers)]
    codes = [p.wait() for p in procs]
    failed = [c for c in codes if c not in (EXIT_OK, EXIT_BAD_INPUT)]
    return failed[0] if failed else max(codes)


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
def _log_to_store(uri: str) -> Iterator[dict]:
    """With CTUNE_LOG_TO_STORE=1 (set in Kubernetes pods), the step's output is also saved
    in the store as its log.txt, whatever the outcome: pod logs vanish with the pod; while it
    runs, a copy of it grows there (``jobs.lib.livelog``). Not when
    this process did not run the step (done before, or claimed by another): the log there is
    the one of the process that did."""
    keep = {"write": True}
    if os.environ.get("CTUNE_LOG_TO_STORE") != "1":
        yield keep
        return
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    old_err, old_out = sys.stderr, sys.stdout
    sys.stderr, sys.stdout = _Tee(old_err, buffer), _Tee(old_out, buffer)
    try:
        with livelog.capturing(buffer):
            yield keep
    finally:
        sys.stderr, sys.stdout = old_err, old_out
        logging.getLogger().removeHandler(handler)
        if keep["write"]:
            with contextlib.suppress(Exception):
                root, prefix = split_step_uri(uri)
                open_store(root).write_bytes(f"{prefix}/{LOG}", buffer.getvalue().encode())


def _run_one(uri: str, kind: str, handler: Handler) -> int:
    with _log_to_store(uri) as log:
        try:
            root, prefix = split_step_uri(uri)
            if is_done(open_store(root), prefix):
                log["write"] = False
                print(f"done {kind} {prefix} (already)", file=sys.stderr)
                return EXIT_OK
            record = run_step(uri, kind, handler)
        except Claimed as exc:
            log["write"] = False
            print(f"claimed: {kind}: {exc}", file=sys.stderr)
            return EXIT_CLAIMED
        except CtuneError as exc:
            print(f"error: {kind}: {redact(str(exc))}", file=sys.stderr)
            code = job_exit_code(exc)
            if code == EXIT_BAD_INPUT:
                with contextlib.suppress(Exception):
                    root, prefix = split_step_uri(uri)
                    write_failure(open_store(root), prefix, f"{kind}: {exc}")
            return code
        except Exception:  # a bug or an unforeseen failure: its traceback goes to the step's log too
            traceback.print_exc()
            return EXIT_FAILED
        print(f"done {kind} {record['id']} in {record['seconds']:.1f}s", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
