"""``ctune``: run, plan and report Cluster & Tune experiments.

Every error is one line on stderr and a non-zero exit (2 for bad input, 1 for failed steps).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from controller.advice import THRESHOLD
from controller.backends.local import Event, LocalBackend
from controller.kube.api import KubeError
from controller.datasets import prepare_all, resolve_data_dir, stage
from controller.modelcheck import ModelError, check_model
from controller.plan import Plan, build_plan
from controller.report import build_report, write_report
from controller.spec import ClusteringSpec, ExperimentSpec, SpecError, load_spec, spec_to_dict
from jobs.__main__ import KINDS as JOB_KINDS
from jobs.data import DataError
from jobs.step import is_done
from jobs.storage import Store, StoreError, open_store

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


@dataclass(frozen=True)
class Session:
    spec: ExperimentSpec
    store: Store
    plan: Plan
    prepared: dict


def store_uri(spec: ExperimentSpec, override: str | None) -> str:
    return override or spec.store or os.environ.get("CTUNE_STORE") or "store"


def open_session(args) -> Session:
    spec = load_spec(args.spec)
    prepared = prepare_all(spec, resolve_data_dir(spec, args.data_dir), args.spec)
    store = open_store(store_uri(spec, args.store))
    store.check()
    plan = build_plan(spec, {name: p.prefix for name, p in prepared.items()},
                      {name: p.corpus_prefix for name, p in prepared.items()})
    return Session(spec, store, plan, prepared)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """One line per finished step, with a running count."""

    def __init__(self, total: int):
        self.total = total
        self.finished = 0
        self.t0 = time.time()

    def __call__(self, e: Event) -> None:
        if e.kind == "start":
            _say(f"  ... {e.step.kind:<10} {e.step.label}")
            return
        self.finished += 1
        mark = {"done": "ok", "failed": "FAILED", "blocked": "blocked"}[e.kind]
        elapsed = time.time() - self.t0
        _say(f"[{self.finished}/{self.total}] {mark:<7} {e.step.kind:<10} {e.step.label} "
             f"({e.seconds:.0f}s; {elapsed / 60:.1f} min elapsed)")
        if e.kind == "failed":
            for line in e.detail.splitlines():
                _say(f"    | {line}")


def cmd_plan(args) -> int:
    s = open_session(args)
    done = 0
    for sid, step in s.plan.steps.items():
        finished = is_done(s.store, step.prefix)
        done += finished
        print(f"{'done' if finished else 'todo':<5} {step.kind:<10} {sid}  {step.label}")
    print(f"{len(s.plan.steps)} steps: {done} done, {len(s.plan.steps) - done} to run "
          f"({len(s.plan.cells)} result cells); store {s.store.root}")
    return 0


def cmd_run(args) -> int:
    s = open_session(args)
    check_model(s.spec.model)
    if args.backend == "kubernetes":  # before anything is written: the cluster must answer
        from controller.kube.commands import kubernetes_backend

        backend = kubernetes_backend(s.spec, s.store, args.kubeconfig, poll_s=args.poll)
    else:
        backend = LocalBackend(s.store, jobs=args.jobs)
    plan = s.plan
    if args.only:
        kinds = {k.strip() for k in args.only.split(",") if k.strip()}
        unknown = sorted(kinds - set(JOB_KINDS))
        if unknown:
            raise SpecError("--only", [f"unknown step kind(s) {', '.join(unknown)} (kinds: {', '.join(sorted(JOB_KINDS))})"])
        plan = s.plan.only(kinds)
    for p in s.prepared.values():
        if stage(s.store, p):
            _say(f"staged {p.name}: {len(p.train)} train / {len(p.test)} test texts -> {p.prefix}")
    base = f"experiments/{s.spec.name}"
    s.store.write_bytes(f"{base}/spec.yaml", yaml.safe_dump(spec_to_dict(s.spec), sort_keys=False).encode())
    s.store.write_bytes(f"{base}/plan.json", s.plan.to_json().encode())
    todo = [sid for sid, st in plan.steps.items() if not is_done(s.store, st.prefix)]
    if not todo:
        _say(f"nothing to run: all {len(plan.steps)} steps of {s.spec.name} are done")
        result_ok = True
    else:
        _say(f"running {len(todo)} of {len(plan.steps)} steps ({len(plan.steps) - len(todo)} already done) "
             f"with {args.jobs} at once; store {s.store.root}")
        result = backend.run(plan, Progress(len(todo)))
        result_ok = result.ok
        if not result.ok:
            _say(f"{len(result.failed)} step(s) failed, {len(result.blocked)} not run because of them")
    report = build_report(s.store, s.spec, s.plan)
    prefix = write_report(s.store, s.spec, report)
    print(report.summary)
    _say(f"report: {s.store.root}/{prefix}/results.csv, summary.md")
    return 0 if result_ok else EXIT_FAILED


def cmd_report(args) -> int:
    s = open_session(args)
    report = build_report(s.store, s.spec, s.plan)
    prefix = write_report(s.store, s.spec, report)
    print(report.summary)
    _say(f"report: {s.store.root}/{prefix}/results.csv, summary.md")
    return 0


def cmd_status(args) -> int:
    from controller.kube.commands import print_status

    s = open_session(args)
    print_status(s.spec, s.store, s.plan, args.kubeconfig, args.kubernetes)
    return 0


def cmd_logs(args) -> int:
    from controller.kube.commands import print_logs

    s = open_session(args)
    return print_logs(s.spec, s.store, s.plan, args.step, args.kubeconfig, args.kubernetes)


def cmd_cancel(args) -> int:
    from controller.kube.commands import cancel

    s = open_session(args)
    n = cancel(s.spec, s.store, args.kubeconfig)
    _say(f"cancelled {s.spec.name}: {n} Job(s) deleted in namespace {s.spec.kubernetes.namespace}")
    return 0


def cmd_train(args) -> int:
    from controller.practitioner import TrainRequest, run_training

    check_model(args.model)
    store = open_store(args.store or os.environ.get("CTUNE_STORE") or "store")
    store.check()
    req = TrainRequest(labeled=Path(args.labeled), out=Path(args.out),
                       corpus=Path(args.corpus) if args.corpus else None, model=args.model,
                       setting=args.setting, protocol=args.protocol,
                       text_field=args.text_field, label_field=args.label_field,
                       clustering=ClusteringSpec(n_clusters=args.clusters))
    ok, info = run_training(store, req, Progress(3))
    if not ok:
        _say("training failed")
        return EXIT_FAILED
    if "labeled_ami" in info:
        _say(f"clusters vs your labels, on the labeled texts: AMI {info['labeled_ami']:.3f} "
             f"(NMI {info['labeled_nmi']:.3f}); inter-training is advised from AMI {info['advice_threshold'] or THRESHOLD}")
    why = " (chosen by the advice)" if info["asked"] == "auto" else ""
    _say(f"model written to {args.out}: {info['labeled']} labeled and {info['corpus']} corpus texts, "
         f"{len(info['labels'])} labels, setting {info['setting']}{why} ({info['protocol']} protocol)")
    return 0


def cmd_predict(args) -> int:
    from controller.practitioner import predict, read_texts, write_predictions

    rows = predict(Path(args.model), read_texts(Path(args.texts), args.text_field))
    with _output(args.output) as out:
        write_predictions(rows, args.format, out)
    return 0


def cmd_suggest(args) -> int:
    import json

    from controller.practitioner import suggest

    store = open_store(args.store or os.environ.get("CTUNE_STORE") or "store")
    store.check()
    rows = suggest(store, Path(args.corpus), args.budget, ClusteringSpec(n_clusters=args.clusters),
                   args.text_field, Progress(1))
    with _output(args.output) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    _say(f"{len(rows)} texts to label, from {len({r['cluster'] for r in rows})} clusters")
    return 0


def _corpus_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clusters", type=int, default=50, help="number of clusters (default 50)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--store", help="where steps are cached (default $CTUNE_STORE, ./store)")


@contextlib.contextmanager
def _output(path: str | None):
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        yield out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctune", description="Cluster & Tune experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, text in (
        ("run", cmd_run, "run every step of the spec that is not done, then report"),
        ("plan", cmd_plan, "show the steps of the spec and which are done"),
        ("report", cmd_report, "aggregate the done cells into results.csv and summary.md"),
        ("status", cmd_status, "what is done, what failed, and (--kubernetes) the experiment's Jobs"),
        ("logs", cmd_logs, "print a step's log (from the store, else from its pod)"),
        ("cancel", cmd_cancel, "stop the experiment's run and delete its Kubernetes Jobs"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("spec", help="experiment spec (YAML)")
        p.add_argument("--store", help="store root: a folder or s3://bucket/prefix (default: spec, $CTUNE_STORE, ./store)")
        p.add_argument("--data-dir", help="folder of datasets (default: spec, $CTUNE_DATA_DIR, ../shared/data)")
        if name == "logs":
            p.add_argument("step", help="step id, or its first characters")
        if name in ("status", "logs"):
            p.add_argument("--kubernetes", action="store_true", help="also ask the cluster")
        if name == "run":
            p.add_argument("--jobs", type=int, default=1, help="steps at once (default 1)")
            p.add_argument("--backend", choices=["local", "kubernetes"], default="local",
                           help="local processes (default) or Kubernetes Jobs (needs an s3:// store)")
            p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
            p.add_argument("--only", help="run only steps of these kinds (comma-separated, e.g. cluster) "
                                          "and the steps they read")
        if name in ("run", "status", "logs", "cancel"):
            p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")
        p.set_defaults(fn=fn)
    t = sub.add_parser("train", help="train a classifier: cluster inter-training, then fine-tune on all labels",
                       description="Corpus + labeled file -> a model folder that plain transformers loads.")
    t.add_argument("labeled", help="labeled examples (.jsonl or .csv with text and label fields)")
    t.add_argument("--corpus", help="unlabeled texts (.jsonl or .csv with a text field)")
    t.add_argument("--out", required=True, help="model folder to create")
    t.add_argument("--model", default="minilm")
    t.add_argument("--setting", choices=["auto", "clust", "bert"], default="auto",
                   help="auto (default): clust when the clusters agree with your labels, else bert")
    t.add_argument("--protocol", choices=["strong", "paper"], default="strong")
    t.add_argument("--label-field", default="label")
    _corpus_options(t)
    t.set_defaults(fn=cmd_train)
    sg = sub.add_parser("suggest", help="propose which texts to label first (spread over clusters by size)")
    sg.add_argument("corpus", help="unlabeled texts (.jsonl or .csv with a text field)")
    sg.add_argument("--budget", type=int, required=True, help="how many texts to propose")
    sg.add_argument("--output", help="JSONL file to write (default: standard output)")
    _corpus_options(sg)
    sg.set_defaults(fn=cmd_suggest)
    pr = sub.add_parser("predict", help="label texts with a trained model folder")
    pr.add_argument("model", help="model folder written by ctune train")
    pr.add_argument("texts", help="texts: .jsonl/.csv with a text field, or .txt with one text per line")
    pr.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    pr.add_argument("--output", help="file to write (default: standard output)")
    pr.add_argument("--text-field", default="text")
    pr.set_defaults(fn=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as exc:
        for line in str(exc).splitlines():
            _say(f"error: {line}")
        return EXIT_BAD_INPUT
    except (DataError, StoreError, ModelError, KubeError) as exc:
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say("interrupted: finished steps are kept; run again to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
