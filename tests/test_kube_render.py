"""Rendering Jobs: golden YAML, packing, and schema validation (kubernetes-validate --strict)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.run.kube.config import KubernetesSpec, Toleration
from controller.run.kube.render import JobUnit, pack_units, render_job, unit_sizes

GOLDEN = Path(__file__).parent / "golden"
CURRENT = "1.37.0"  # the newest Kubernetes schema kubernetes-validate knows
STORE = "s3://ctune-runs/grid"

pytestmark = pytest.mark.unit

FULL = KubernetesSpec(
    namespace="ml-jobs", image="registry.example.com/cluster-tune-job:0.1", gpus=1, cpu="4", memory="24Gi",
    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    tolerations=(Toleration("nvidia.com/gpu", "Exists", None, "NoSchedule"),),
    priority_class="batch-low", queue="gpu-queue", backoff_limit=3, active_deadline_s=7200,
    ttl_after_finished_s=3600, pack=4)


def tiny_plan(**overrides):
    raw = {"name": "grid", "datasets": ["ag_news"], "settings": ["bert", "clust", "nb"], "budgets": [64],
           "repetitions": 3, **overrides}
    spec = parse_spec(raw)
    return spec, build_plan(spec, {"ag_news": "datasets/ag_news-0123456789abcdef"})


def check_golden(name: str, manifest: dict) -> None:
    text = yaml.safe_dump(manifest, sort_keys=False)
    path = GOLDEN / name
    if text != path.read_text() and os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
        pytest.fail(f"{name} rewritten (UPDATE_GOLDEN): check its diff, then run again without it")
    assert text == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def test_gpu_step_job_matches_golden():
    _, plan = tiny_plan()
    step = next(s for s in plan.steps.values() if s.kind == "intertrain")
    check_golden("job-intertrain.yaml", render_job(JobUnit((step,)), "grid", STORE, FULL))


def test_cpu_step_job_matches_golden_and_has_no_gpu_scheduling():
    _, plan = tiny_plan()
    step = next(s for s in plan.steps.values() if s.kind == "cluster")
    job = render_job(JobUnit((step,)), "grid", STORE, FULL)
    check_golden("job-cluster.yaml", job)
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["requests"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_packed_finetune_cells_share_a_job_per_starting_model():
    _, plan = tiny_plan(repetitions=5)
    steps = list(plan.steps.values())
    units = pack_units(steps, 4)
    fine = [u for u in units if u.kind == "finetune"]
    # bert and clust start from different models: 5 cells each -> 4 + 1 per start
    assert sorted(len(u.steps) for u in fine) == [1, 1, 4, 4]
    assert all(len({tuple(sorted(s.inputs.items())) for s in u.steps}) == 1 for u in fine)
    assert sum(len(u.steps) for u in units) == len(steps)
    job = render_job(fine[0], "grid", STORE, FULL)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command.count("--step") == len(fine[0].steps)
    assert job["metadata"]["annotations"]["cluster-tune.io/steps"].count(",") == len(fine[0].steps) - 1
    assert len({u.name for u in units}) == len(units)  # one name per Job, derived from its steps


def test_defaults_render_without_optional_scheduling():
    _, plan = tiny_plan()
    step = next(s for s in plan.steps.values() if s.kind == "finetune")
    job = render_job(JobUnit((step,)), "grid", STORE, KubernetesSpec())
    assert "suspend" not in job["spec"] and "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    assert "priorityClassName" not in job["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "hostNetwork" not in job["spec"]["template"]["spec"]


def test_host_network_puts_every_pod_on_the_nodes_network():
    _, plan = tiny_plan()
    for unit in pack_units(list(plan.steps.values()), 1):  # GPU and CPU steps alike
        pod = render_job(unit, "grid", STORE, KubernetesSpec(host_network=True))["spec"]["template"]["spec"]
        assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet", unit.kind


def test_every_rendered_job_passes_strict_schema_validation(tmp_path):
    _, plan = tiny_plan(settings=["bert", "clust", "mlm", "probe", "nb"], analysis={"enabled": True})
    units = pack_units(list(plan.steps.values()), 2)
    files = []
    for i, unit in enumerate(units):
        for j, k in enumerate((FULL, KubernetesSpec())):
            path = tmp_path / f"job-{i}-{j}.yaml"
            path.write_text(yaml.safe_dump(render_job(unit, "grid", STORE, k)))
            files.append(str(path))
    validate = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(validate), "--strict", "--quiet", "-k", CURRENT, *files],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(files) == 2 * len(units) > 10


def test_invalid_kubernetes_settings_are_named():
    from controller.plan.spec import SpecError

    with pytest.raises(SpecError) as err:
        parse_spec({"name": "x", "datasets": ["a"], "kubernetes": {
            "namespace": "Bad_NS", "memory": "lots", "gpu_kinds": ["gpu"], "pack": 0,
            "tolerations": [{"key": "k", "operator": "Maybe"}], "node_selector": ["a"]}})
    text = str(err.value)
    for expected in ("kubernetes.node_selector: expected a mapping", ):
        assert expected in text
    with pytest.raises(SpecError) as err:
        parse_spec({"name": "x", "datasets": ["a"], "kubernetes": {
            "namespace": "Bad_NS", "memory": "lots", "gpu_kinds": ["gpu"], "pack": 0,
            "tolerations": [{"key": "k", "operator": "Maybe"}], "unschedulable_timeout_s": -1}})
    problems = err.value.problems
    assert any("kubernetes.unschedulable_timeout_s: must not be negative" in p for p in problems)
    assert any("kubernetes.namespace: 'Bad_NS'" in p for p in problems)
    assert any("kubernetes.memory: 'lots'" in p for p in problems)
    assert any("unknown step kind 'gpu'" in p for p in problems)
    assert any("kubernetes.pack: must be at least 1" in p for p in problems)
    assert any("tolerations[0].operator: 'Maybe'" in p for p in problems)


def test_a_kubernetes_section_file_is_read_as_strictly_as_a_spec(tmp_path):
    from controller.plan.spec import SpecError
    from controller.run.kube.config import load_section

    top, nested = tmp_path / "top.yaml", tmp_path / "nested.yaml"
    top.write_text("namespace: ml\ngpus: 2\n")
    nested.write_text("kubernetes:\n  namespace: ml\n  gpus: 2\n")
    assert load_section(str(top)) == load_section(str(nested)) == KubernetesSpec(namespace="ml", gpus=2)
    for text, expected in (("namespace: ml\nnamespace: other\n", "duplicate key 'namespace' at line 2"),
                           ("gpus: -1\n", "kubernetes.gpus: must not be negative"),
                           ("gpus: [\n", "invalid YAML")):
        top.write_text(text)
        with pytest.raises(SpecError, match=expected):
            load_section(str(top))
    with pytest.raises(SpecError, match="cannot read it"):
        load_section(str(tmp_path / "none.yaml"))


def test_api_calls_retry_transient_errors_and_name_the_rest():
    from kubernetes.client.exceptions import ApiException

    from controller.run.kube.api import KubeApi, KubeError

    api = KubeApi.__new__(KubeApi)
    api.retries, api.backoff_s = 3, 0.0
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ApiException(status=503, reason="Service Unavailable")
        return "ok"

    assert api._call("listing Jobs", flaky) == "ok" and len(calls) == 3
    calls.clear()

    def forbidden():
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(KubeError, match="creating Job x: 403 Forbidden"):
        api._call("creating Job x", forbidden)
    assert len(calls) == 1  # not retried
    assert api._call("creating Job x", lambda: (_ for _ in ()).throw(ApiException(status=409)), ok_status=(409,)) is None


def test_auto_packs_cells_on_gpu_nodes_and_workers_share_a_pod():
    # GIVEN 3 settings x 20 repetitions and the default packing (auto)
    _, plan = tiny_plan(settings=["bert", "clust", "nb"], repetitions=20)
    steps = list(plan.steps.values())
    auto = pack_units(steps, unit_sizes(KubernetesSpec()))
    # THEN fine-tune cells (GPU) and classic cells (CPU) go 16 to a Job, the rest alone
    sizes = sorted(len(u.steps) for u in auto if u.kind in ("finetune", "classic"))
    assert sizes == [4, 4, 4, 16, 16, 16]
    assert all(len(u.steps) == 1 for u in auto if u.kind not in ("finetune", "classic"))
    # AND with no GPUs the fine-tunes (and SetFit cells) are not packed; a number packs every kind of cell
    assert unit_sizes(KubernetesSpec(gpus=0)) == {"finetune": 1, "setfit": 1, "classic": 16}
    assert unit_sizes(KubernetesSpec(pack=3)) == {"finetune": 3, "setfit": 3, "classic": 3}
    # AND workers split a pack over processes of one pod
    pack = next(u for u in auto if u.kind == "finetune" and len(u.steps) == 16)
    command = render_job(pack, "grid", STORE, KubernetesSpec(workers=4))["spec"]["template"]["spec"]["containers"][0]
    assert command["command"][4:10] == ["python", "-m", "jobs", "finetune", "--workers", "4"]
    single = next(u for u in auto if len(u.steps) == 1)
    assert "--workers" not in render_job(single, "grid", STORE, KubernetesSpec(workers=4))["spec"]["template"][
        "spec"]["containers"][0]["command"]
