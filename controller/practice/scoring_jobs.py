"""Batch scoring on the cluster: ``ctune predict REGISTRY[@VERSION] s3://.../texts/ --out
s3://.../predictions/ --backend kubernetes`` resolves the version once, then starts ``--jobs``
Jobs in the controller image, each scoring its share of the input files (``--shard I/N``:
by a digest of the file's path) with that version, and waits for them. A rerun with nothing
left to score starts no Job."""

from __future__ import annotations

import argparse
import time
import uuid

from controller.models.registry import Registry
from controller.models.runtime import Runtime
from controller.practice.scoring import Place, announce, input_files, output_name
from controller.run.kube.commands import kube_api
from controller.run.kube.config import KubernetesSpec, load_section
from controller.run.kube.render import SCORING, render_scoring_job
from controller.run.live import say
from jobs.contract.errors import EXIT_OK, StepsFailed
from jobs.data import DataError


def scoring_args(registry: Registry, version: str, runtime: Runtime, texts: Place, out: Place, text_field: str,
                 shard: int, shards: int) -> list[str]:
    return ["predict", f"{registry.uri}@{version}", texts.uri, "--out", out.uri, "--runtime", runtime.name,
            "--text-field", text_field, "--shard", f"{shard}/{shards}"]


def score_on_cluster(args: argparse.Namespace, registry: Registry, version: str, runtime: Runtime, texts: Place,
                     out: Place) -> int:
    for what, uri in (("the registry", registry.uri), ("TEXTS", texts.uri), ("--out", out.uri)):
        if not uri.startswith("s3://"):
            raise DataError(f"{what} {uri} is on this machine: with --backend kubernetes it must be in the store "
                            "the pods read (s3://...)")
    if args.jobs < 1:
        raise DataError(f"--jobs {args.jobs}: at least 1")
    k = load_section(args.kubernetes) if args.kubernetes else KubernetesSpec()
    api = kube_api(args.kubeconfig, k.namespace)
    announce(registry, version, runtime, out, say)
    files = input_files(texts)
    if not files:
        raise DataError(f"{texts.uri}: no .jsonl, .csv or .txt files there")
    todo = [f for f in files if not out.store.exists(out.key(output_name(version, f)))]
    if not todo:
        say(f"nothing to score: version {version} scored all {len(files)} file(s) under {texts.uri} already")
        return EXIT_OK
    shards = min(args.jobs, len(todo))
    run = f"{version[:8]}-{uuid.uuid4().hex[:6]}"
    names = [f"ctune-score-{run}-{i}" for i in range(shards)]
    t0 = time.time()
    for i, name in enumerate(names):
        api.create_job(render_scoring_job(name, run, scoring_args(registry, version, runtime, texts, out,
                                                                  args.text_field, i, shards), k))
    say(f"{len(todo)} of {len(files)} file(s) to score: {shards} Job(s) in namespace {k.namespace} ({', '.join(names)})")
    _wait(api, k, run, names, args.poll)
    scored = [f for f in todo if out.store.exists(out.key(output_name(version, f)))]
    say(f"version {version}: {len(scored)} file(s) scored by {shards} Job(s) in {time.time() - t0:.0f} s, "
        f"{len(files) - len(todo)} scored by it before (skipped); predictions under {out.uri}/{version}/")
    return EXIT_OK


def _wait(api, k: KubernetesSpec, run: str, names: list[str], poll_s: float) -> None:
    selector = f"{SCORING}={run}"
    while True:
        states = api.jobs(k.namespace, selector)
        failed = [n for n in names if n in states and states[n].failed_for_good]
        if failed:
            tail = api.pod_log_tail(k.namespace, failed[0])
            raise StepsFailed(f"batch scoring Job {failed[0]} failed ({states[failed[0]].message}); its last lines:\n{tail}")
        if all(n in states and states[n].complete for n in names):
            return
        api.wait_for_change(k.namespace, selector, max(poll_s, 1.0) * 6)
