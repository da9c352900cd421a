"""The controller against the test rig's real API server: planning and submitting the paper's
grid, and re-running it when everything is done. ``python -m bench.controller``.

The rig (etcd, kube-apiserver, kube-controller-manager v1.20.2, no node) and an S3 server
(moto) run on this machine; the datasets are staged beforehand (an upload, not planning).
The controller runs ``experiments/paper.yaml`` (with the packaged MiniLM) as a user would,
``ctune run --backend kubernetes``, with no cap on Jobs in flight, and is stopped once every
step that can start has its Job; then every step is marked done and it runs again.
Targets: under 10 s and 300 MB RSS to submit; a no-op re-run under 3 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _spec(folder: Path, bucket: str, namespace: str) -> Path:
    raw = yaml.safe_load((REPO / "experiments/paper.yaml").read_text())
    raw.update(model="minilm", store=f"s3://{bucket}/grid",
               kubernetes={"namespace": namespace, "image": "cluster-tune-job:bench", "max_in_flight": 100000})
    path = folder / "paper-bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _stage(spec_path: Path) -> tuple[object, object]:
    from controller.plan.datasets import prepare_all, resolve_data_dir, stage_prepared
    from controller.plan.graph import build_plan
    from controller.plan.spec import load_spec
    from jobs.storage import open_store

    spec = load_spec(spec_path)
    prepared = prepare_all(spec, resolve_data_dir(spec, None), str(spec_path))
    store = open_store(str(spec.store))
    for p in prepared.values():
        stage_prepared(store, p)
    plan = build_plan(spec, {n: p.prefix for n, p in prepared.items()}, {n: p.corpus_prefix for n, p in prepared.items()})
    return spec, plan


def _ready_units(spec, plan) -> int:
    from controller.run.kube.config import kube_config
    from controller.run.kube.render import pack_units, unit_sizes

    units = pack_units(list(plan.steps.values()), unit_sizes(kube_config(spec)))
    own = {u.name: {s.id for s in u.steps} for u in units}
    return sum(1 for u in units if not ({d for s in u.steps for d in s.deps()} - own[u.name]))


def _mark_done(spec, plan) -> None:
    """What the jobs would have written, minus the work: the outputs the report reads, then
    ``_SUCCESS``."""
    import json

    from jobs.contract.outputs import ASSIGNMENTS, CLUSTERS, METRICS, NED, SAMPLE
    from jobs.contract.staging import TRAIN, read_split
    from jobs.contract.steps import MARKER
    from jobs.storage import open_store

    store = open_store(str(spec.store))
    sizes: dict[str, int] = {}
    for step in plan.steps.values():
        def put(name: str, value: object, step=step) -> None:
            store.write_bytes(f"{step.prefix}/{name}", json.dumps(value).encode())

        if step.kind == "cluster":
            dataset = step.inputs["dataset"]
            sizes.setdefault(dataset, len(read_split(store, dataset, TRAIN)))
            put(ASSIGNMENTS, {"labels": [i % 50 for i in range(sizes[dataset])]})
            put(CLUSTERS, {"nmi_with_gold": 0.5})
        if step.kind == "analyze":
            put(NED, {"n_texts": 1000, "ned_before": 0.9, "ned_after": 0.5, "drop": 0.4, "p_value": 0.001})
        if step.kind in ("finetune", "classic"):
            put(SAMPLE, {"indices": list(range(step.params.budget))})
            put(METRICS, {"accuracy": 0.5, "macro_f1": 0.5})
        store.write_bytes(f"{step.prefix}/{MARKER}", b"{}")


def _jobs(api, namespace: str) -> int:
    return len(api.list_namespaced_job(namespace).items)


def submit(argv: list[str], env: dict, api, namespace: str, expected: int, limit_s: float = 120) -> tuple[float, int]:
    """Seconds until ``expected`` Jobs exist, and the controller's peak RSS (KB, GNU time's)."""
    rss_file = Path(tempfile.mkstemp(prefix="ctune-rss-")[1])
    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    while _jobs(api, namespace) < expected and time.perf_counter() - t0 < limit_s and proc.poll() is None:
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    _interrupt(proc)
    proc.wait(timeout=60)
    rss = int(rss_file.read_text().split()[-1])
    if _jobs(api, namespace) < expected:
        raise SystemExit(f"only {_jobs(api, namespace)} of {expected} Jobs after {seconds:.0f} s:\n{proc.stderr.read()}")
    return seconds, rss


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a terminal sends it: to the whole group (GNU time ignores it, the controller stops)."""
    os.killpg(proc.pid, signal.SIGINT)


def main() -> None:
    import logging

    import boto3
    from kubernetes import client, config
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    from tests.kube_rig import BIN_CACHE, KubeRig

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        s3.start()
        host, port = s3.get_host_and_port()
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "CTUNE_CACHE": str(folder / "cache")}
        os.environ.update(env)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        rig = KubeRig(folder / "rig").start(Path(os.environ.get("CTUNE_KUBE_BIN", BIN_CACHE)))
        try:
            env["KUBECONFIG"] = str(rig.kubeconfig())
            core = client.CoreV1Api(config.new_client_from_config(env["KUBECONFIG"]))
            batch = client.BatchV1Api(config.new_client_from_config(env["KUBECONFIG"]))
            namespace = "bench"
            core.create_namespace({"metadata": {"name": namespace}})
            spec_path = _spec(folder, bucket, namespace)
            t0 = time.perf_counter()
            spec, plan = _stage(spec_path)
            staged = time.perf_counter() - t0
            expected = _ready_units(spec, plan)
            argv = [sys.executable, "-m", "controller.cli", "run", str(spec_path), "--backend", "kubernetes", "--poll", "5"]
            seconds, rss = submit(argv, env, batch, namespace, expected)
            print(f"submit {len(plan.steps)} steps of experiments/paper.yaml (MiniLM): {expected} Jobs (every step "
                  f"that can start, packed) in {seconds:.2f} s, peak RSS {rss / 1024:.0f} MB "
                  f"(targets 10 s, 300 MB); staging the 6 datasets beforehand took {staged:.1f} s", flush=True)
            t0 = time.perf_counter()
            _mark_done(spec, plan)
            print(f"(marking every step done, with the outputs the report reads, took {time.perf_counter() - t0:.0f} s)",
                  flush=True)
            for what in ("the run that finds the grid done and makes its report", "a no-op re-run"):
                t0 = time.perf_counter()
                done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
                again = time.perf_counter() - t0
                said = [line for line in done.stderr.splitlines() if "nothing to run" in line]
                print(f"{what} (all {len(plan.steps)} steps done): {again:.2f} s (target for a no-op 3 s): "
                      f"{said[0] if said else done.stderr[-300:]}", flush=True)
        finally:
            rig.stop()
            s3.stop()


if __name__ == "__main__":
    main()
