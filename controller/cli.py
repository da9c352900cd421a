"""``ctune``: run, plan and report Cluster & Tune experiments.

Every error is one line on stderr and a non-zero exit (``jobs.contract.errors``: 2 when
nothing could be started because of the input, 1 when steps failed). This process never
loads torch: steps run in processes (or pods) of their own.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.parser import MAX_CELLS, build_parser
from controller.plan.datasets import PreparedDataset, prepare_all, resolve_data_dir, stage_prepared
from controller.plan.graph import Plan, build_plan
from controller.plan.spec import ExperimentSpec, SpecError, grid_cells, load_spec, max_lengths, store_uri
from controller.practice.commands import cmd_models, cmd_predict, cmd_suggest, cmd_train
from controller.run.backends.base import Backend, Event
from controller.run.live import Progress, say
from jobs.contract.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    CtuneError,
    cli_exit_code,
    redact,
)
from jobs.contract.kinds import load_plugins, step_kinds
from jobs.storage import Store, open_store


@dataclass(frozen=True)
class Session:
    spec: ExperimentSpec
    store: Store
    plan: Plan
    prepared: dict[str, PreparedDataset]
    spec_path: str = "SPEC"


def open_session(args: argparse.Namespace, model_here: bool | None = None, ask_hub: bool = True) -> Session:
    """The spec, its datasets, its store and its plan. ``model_here`` (plan, run): first check
    that the spec's model loads where its steps run (True: on this machine), before anything;
    ``ask_hub`` off (plan): a hub id is not asked of the hub."""
    spec = load_spec(args.spec)
    if model_here is not None:
        _check_model(spec, local=model_here, hub=ask_hub)
    cells = grid_cells(spec)
    if cells > MAX_CELLS and not getattr(args, "allow_large", False):
        raise SpecError(args.spec, [f"the grid has {cells:,} cells, more than {MAX_CELLS:,} "
                                    "(check repetitions and budgets; --allow-large to plan it anyway)"])
    prepared = prepare_all(spec, resolve_data_dir(spec, args.data_dir), args.spec)
    store = open_store(store_uri(spec.store, args.store))
    store.check()
    plan = build_plan(spec, {name: p.prefix for name, p in prepared.items()},
                      {name: p.corpus_prefix for name, p in prepared.items()})
    return Session(spec, store, plan, prepared, str(args.spec))


def committed_steps(s: Session, recheck: bool = False) -> set[str]:
    """The prefixes of the plan's committed steps (see ``controller.run.committed``)."""
    from controller.run.committed import committed

    return committed(s.store, s.spec.name, (step.prefix for step in s.plan.steps.values()), recheck)


def _check_model(spec: ExperimentSpec, local: bool, hub: bool = True) -> None:
    """The spec's model must load where its steps run (``local``: on this machine), and take
    the spec's lengths; checked from here, without loading it."""
    from controller.plan.modelcheck import check_lengths, check_model

    check_lengths(spec.model, check_model(spec.model, local=local, hub=hub), max_lengths(spec))


def cmd_plan(args: argparse.Namespace) -> int:
    s = open_session(args, model_here=False, ask_hub=False)  # as ctune run checks the model, offline
    done = committed_steps(s)
    finished = 0
    lines = []
    for sid, step in s.plan.steps.items():
        committed = step.prefix in done
        finished += committed
        lines.append(f"{'done' if committed else 'todo':<5} {step.kind:<10} {sid}  {step.label}")
    print("\n".join(lines))
    print(f"{len(s.plan.steps)} steps: {finished} done, {len(s.plan.steps) - finished} to run "
          f"({len(s.plan.cells)} result cells); store {s.store.root}")
    return EXIT_OK


def _only(plan: Plan, only: str | None) -> Plan:
    if not only:
        return plan
    kinds = {k.strip() for k in only.split(",") if k.strip()}
    unknown = sorted(kinds - set(step_kinds()))
    if unknown:
        raise SpecError("--only", [f"unknown step kind(s) {', '.join(unknown)} (kinds: {', '.join(sorted(step_kinds()))})"])
    return plan.only(kinds)


def _backend(s: Session, args: argparse.Namespace) -> Backend:
    if args.backend == "kubernetes":  # before anything is written: the cluster must answer
        from controller.run.kube.commands import kubernetes_backend

        return kubernetes_backend(s.spec, s.store, args.kubeconfig, poll_s=args.poll)
    from controller.run.backends.local import LocalBackend

    return LocalBackend(s.store, jobs=args.jobs, pack=args.pack)


def _report_files(s: Session, done: set[str] | None = None, seen_failed: dict[str, str] | None = None):
    """Write every report file (tables, plot, page, JSON); the report and the page's key."""
    from controller.report.cache import CellCache
    from controller.report.page import write_page
    from controller.report.results import build_report, report_prefix, write_report

    cache = CellCache(s.store, report_prefix(s.spec))  # read once, for the tables and the page
    report = build_report(s.store, s.spec, s.plan, done, cache)
    write_report(s.store, s.spec, report)
    return report, write_page(s.store, s.spec, s.plan, report, seen_failed, done, cache)


def _write_report(s: Session, done: set[str] | None = None, seen_failed: dict[str, str] | None = None) -> str:
    report, page = _report_files(s, committed_steps(s) if done is None else done, seen_failed)
    print(report.summary)
    say(f"report: {page_address(s.store, page)} (and results.csv, results.json, summary.md beside it)")
    return page


def page_address(store: Store, key: str, share: bool = False) -> str:
    """Where the page is: a file:// URL, or its s3:// URI; with ``share``, for S3 a link a
    browser opens for a day (it names the access key's id, so only when asked for)."""
    if not store.root.startswith("s3://"):
        return Path(store.root, key).resolve().as_uri()
    link = getattr(store, "share_url", None)
    return str(link(key)) if share and link is not None else f"{store.root}/{key}"


def cmd_run(args: argparse.Namespace) -> int:
    import yaml

    from controller.plan.spec import spec_to_dict
    from controller.run.live import LivePage, LiveStatus

    s = open_session(args, model_here=args.backend == "local")
    backend = _backend(s, args)
    plan = _only(s.plan, args.only)
    done = committed_steps(s, args.recheck)
    back = _redo_older(s, plan, done, _this_environment(args)) if args.redo_older_env else []
    taken = {s.plan.steps[sid].prefix for sid in back}
    done = _check_inputs(s, plan, done - taken) | (done & taken)  # what the steps to compute read is checked
    todo = [st for st in plan.steps.values() if st.prefix not in done or st.prefix in taken]
    if args.backend == "local":  # before anything is written: this machine must run what is left
        from controller.run.backends.local import check_job_packages

        check_job_packages(todo)
    if back:
        from controller.run.verify import invalidate

        invalidate(s.store, s.plan, back, _forget_cached(s))
        done -= taken
    for p in s.prepared.values():
        if stage_prepared(s.store, p):
            say(f"staged {p.name}: {p.summary.n_train} train / {p.summary.n_test} test texts -> {p.prefix}")
    base = f"experiments/{s.spec.name}"
    s.store.write_bytes(f"{base}/spec.yaml", yaml.safe_dump(spec_to_dict(s.spec), sort_keys=False).encode())
    s.store.write_bytes(f"{base}/plan.json", s.plan.to_json().encode())
    if not todo:
        say(f"nothing to run: all {len(plan.steps)} steps of {s.spec.name} are done")
        _write_report(s, done)
        return EXIT_OK
    say(f"running {len(todo)} of {len(plan.steps)} steps ({len(plan.steps) - len(todo)} already done) "
        f"with {args.jobs} at once; store {s.store.root}")
    seen_failed: dict[str, str] = {}
    page = LivePage(lambda: _report_files(s, None, seen_failed))
    with LiveStatus(s.store) as live:
        progress = Progress(len(todo), live.say)

        def on_event(e: Event) -> None:
            live.on_event(e)
            progress(e)
            if e.kind == "failed":
                seen_failed[e.step.id] = e.detail
            page.on_event(e)

        page.now()
        say(f"report page (rewritten as steps finish): {page_address(s.store, f'{base}/report/index.html')}")
        result = backend.run(plan, on_event)
    if not result.ok:
        say(f"{len(result.failed)} step(s) failed, {len(result.blocked)} not run because of them")
    _write_report(s, None, seen_failed)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    s = open_session(args)
    page = _write_report(s)
    if args.open:
        import webbrowser

        address = page_address(s.store, page, share=True)
        opened = address.startswith("file:") and webbrowser.open(address)
        say(f"opened {address}" if opened else f"open {address} in a browser")
    return EXIT_OK


def _jobs_view(s: Session, args: argparse.Namespace):
    """What the backend adds to the store's account of a run (``--kubernetes``: the Jobs)."""
    if not args.kubernetes:
        return None
    from controller.run.kube.commands import KubeJobsView

    return KubeJobsView(s.spec, args.kubeconfig)


def cmd_status(args: argparse.Namespace) -> int:
    from controller.run.status import print_status

    s = open_session(args)
    print_status(s.spec.name, s.store, s.plan, _jobs_view(s, args))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from controller.run.status import print_logs

    s = open_session(args)
    if args.follow:
        from controller.run.follow import follow

        return follow(s.store, s.plan.find(args.step, s.spec.name))
    return print_logs(s.spec.name, s.store, s.plan, args.step, _jobs_view(s, args))


def cmd_cancel(args: argparse.Namespace) -> int:
    from controller.run.kube.commands import cancel
    from controller.run.kube.config import kube_config

    s = open_session(args)
    n = cancel(s.spec, s.store, args.kubeconfig)
    say(f"cancelled {s.spec.name}: {n} Job(s) deleted in namespace {kube_config(s.spec).namespace}")
    return EXIT_OK


def _dataset_prefixes(s: Session) -> set[str]:
    """The staged datasets (and corpora) the session's plan reads."""
    return {p for prep in s.prepared.values() for p in (prep.prefix, prep.corpus_prefix)}


def _forget_cached(s: Session) -> Callable[[set[str]], None]:
    """Uncommitted steps are computed again: what the reports' caches hold of them goes too."""
    from controller.report.cache import forget_cached

    return lambda prefixes: forget_cached(s.store, {p.rsplit("/", 1)[-1] for p in prefixes})


def _this_environment(args: argparse.Namespace):
    """The environment the run computes in, where it is known here: the local backend's jobs
    run on this installation (None for a cluster: its image's, unknown here)."""
    from jobs.contract.environment import installed_versions, of_versions

    return of_versions(installed_versions()) if args.backend == "local" else None


def _redo_older(s: Session, plan: Plan, done: set[str], reference) -> list[str]:
    """``--redo-older-env``: the committed steps of ``plan`` computed under another environment
    than ``reference`` (None: the newest step's), and every committed step computed from them."""
    from controller.run.environments import committed_environments, to_take_back
    from jobs.contract.environment import describe

    found = committed_environments(s.store, s.plan, done)
    stale, back = to_take_back(s.plan, found, set(plan.steps), reference)
    kept = describe(reference) if reference is not None else "the environment of the most recently finished step"
    say(f"{len(stale)} step(s) of another environment than this run's ({kept}) and {len(back) - len(stale)} computed "
        "from them: computing them again" if back else "every committed step is of the environment this run computes in")
    outside = [sid for sid in back if sid not in plan.steps]
    if outside:
        say(f"{len(outside)} of them are not among --only's steps: uncommitted, computed by a run without --only")
    return back


def _list_environments(s: Session, done: set[str]) -> None:
    from controller.report.results import mixed_environments
    from controller.run.environments import committed_environments, format_single

    found = committed_environments(s.store, s.plan, done)
    lines = mixed_environments(s.plan, found, s.spec_path)
    print("\n".join(lines).strip() if lines else format_single(found))


def cmd_verify(args: argparse.Namespace) -> int:
    from controller.run.verify import check, uncommit_broken

    s = open_session(args)
    done = committed_steps(s, recheck=True)
    datasets = _dataset_prefixes(s)
    broken = check(s.store, done | datasets, deep=args.deep)  # what is not committed has nothing to check
    for prefix, problems in broken.items():
        say(f"corrupt: {prefix}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    uncommit_broken(s.store, broken, _forget_cached(s))
    _list_environments(s, done - set(broken))
    checked = len(done) + len(datasets)
    how = "every file hashed" if args.deep else "sizes, small files hashed"
    outcome = f"{len(broken)} corrupt, uncommitted: `ctune run` computes them again" if broken else "all intact"
    say(f"verified {checked} committed steps and datasets ({how}): {outcome}")
    return EXIT_FAILED if broken else EXIT_OK


def cmd_invalidate(args: argparse.Namespace) -> int:
    from controller.run.verify import dependents, invalidate

    s = open_session(args)
    sids = dependents(s.plan, s.plan.find(args.step, s.spec.name).id)
    done = committed_steps(s, recheck=True)
    removed = invalidate(s.store, s.plan, [sid for sid in sids if s.plan.steps[sid].prefix in done], _forget_cached(s))
    say(f"invalidated {len(removed)} step(s): {sids[0][:16]} and {len(sids) - 1} computed from it "
        f"({len(removed)} were committed); `ctune run` computes them again")
    return EXIT_OK


def _check_inputs(s: Session, plan, done: set[str]) -> set[str]:
    """Uncommit the committed steps the run is about to read whose files do not match their
    records; the committed set without them."""
    from controller.run.verify import check, read_by, uncommit_broken

    todo = [sid for sid, st in plan.steps.items() if st.prefix not in done]
    datasets = _dataset_prefixes(s)
    broken = check(s.store, read_by(plan, todo, datasets) & (done | datasets))
    for prefix, problems in broken.items():
        say(f"warning: {prefix} is corrupt ({problems[0]}): computing it again")
    uncommit_broken(s.store, broken, _forget_cached(s))
    return done - set(broken)


COMMANDS = {"run": cmd_run, "plan": cmd_plan, "report": cmd_report, "status": cmd_status, "logs": cmd_logs,
            "cancel": cmd_cancel, "verify": cmd_verify, "invalidate": cmd_invalidate, "train": cmd_train,
            "suggest": cmd_suggest, "predict": cmd_predict, "models": cmd_models}


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop as on Ctrl-C (running jobs stopped, finished steps kept)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    args = build_parser(COMMANDS).parse_args(argv)
    try:
        load_plugins()
        code: int = args.fn(args)
        return code
    except SpecError as exc:
        for line in str(exc).splitlines():
            say(f"error: {redact(line)}")
        return cli_exit_code(exc)
    except CtuneError as exc:
        say(f"error: {redact(' '.join(str(exc).split()))}")  # one line, even for a library's message
        return cli_exit_code(exc)
    except KeyboardInterrupt as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        say(f"{how}: running steps were stopped, finished ones are kept; run again to continue")
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:  # `ctune plan ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
