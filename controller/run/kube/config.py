"""The spec's ``kubernetes:`` section: how steps run as ``batch/v1`` Jobs, and its checks.
Registered with the spec as this backend's section (``controller.plan.spec.BACKEND_SECTIONS``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from controller.plan.spec import register_backend_section
from jobs.contract.kinds import KINDS, step_kinds

_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TOLERATION_OPERATORS = ("Exists", "Equal")


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None


@dataclass(frozen=True)
class KubernetesSpec:
    """How steps run as ``batch/v1`` Jobs (``--backend kubernetes``)."""

    namespace: str = "cluster-tune"
    image: str = "cluster-tune-job:latest"
    image_pull_policy: str = "IfNotPresent"
    controller_image: str = "cluster-tune-controller:latest"
    """The image of the Jobs that run the controller's own work (batch scoring: no torch)."""
    service_account: str = "cluster-tune-job"
    gpu_kinds: tuple[str, ...] = field(default_factory=lambda: tuple(k.name for k in KINDS.values() if k.gpu))
    """Step kinds that get ``gpus`` (default: those whose descriptor wants a GPU,
    ``jobs.contract.kinds``); the others (cluster, classic) run on CPU."""
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "2"
    memory: str = "16Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    """For GPU steps."""
    tolerations: tuple[Toleration, ...] = ()
    """For GPU steps."""
    priority_class: str | None = None
    queue: str | None = None
    """A Kueue LocalQueue: Jobs get its label and are created suspended for Kueue to admit."""
    s3_secret: str = "cluster-tune-s3"
    """Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, optionally,
    AWS_ENDPOINT_URL and AWS_DEFAULT_REGION."""
    backoff_limit: int = 2
    """Pod retries of a Job (node lost, out of memory); a bad input is never retried."""
    active_deadline_s: int = 6 * 3600
    ttl_after_finished_s: int = 24 * 3600
    max_in_flight: int = 20
    """Jobs at once."""
    pack: int | str = "auto"
    """Cells per Job (cells sharing a starting model run in one pod, one after another): a
    number, or ``auto`` (16 on GPU nodes and for the CPU-only cells, else 1)."""
    workers: int = 1
    """Processes per pod for a pack, sharing its GPU (small models leave a GPU mostly idle)."""
    unschedulable_timeout_s: int = 0
    """A step whose pod the scheduler cannot place (no node has the GPUs, a node selector no
    node matches) is shown as waiting, with the scheduler's message, and waits: an autoscaler
    or a finishing workload may free room. With N > 0 it fails after N seconds unscheduled
    (its Job deleted)."""
    host_network: bool = False
    """Pods on the node's network (``hostNetwork``): for a store or an API server reachable only
    on the node's own addresses (a single-node or test cluster)."""

    def problems(self) -> list[str]:
        """Every invalid value, as ``"<key>: <message>"`` lines."""
        return self._name_problems() + self._number_problems()

    def _name_problems(self) -> list[str]:
        out = [f"{key}: {getattr(self, key)!r} is not a valid Kubernetes name"
               for key in ("namespace", "service_account") if not _DNS_LABEL.match(getattr(self, key))]
        out += [f"{key}: {getattr(self, key)!r} is not a valid Kubernetes name"
                for key in ("s3_secret", "priority_class", "queue")
                if getattr(self, key) and not _DNS_SUBDOMAIN.match(getattr(self, key))]
        if not self.image.strip():
            out.append("image: must not be empty")
        if self.image_pull_policy not in PULL_POLICIES:
            out.append(f"image_pull_policy: {self.image_pull_policy!r} (known: {', '.join(PULL_POLICIES)})")
        out += [f"gpu_kinds: unknown step kind {kind!r} (known: {', '.join(step_kinds())})"
                for kind in self.gpu_kinds if kind not in step_kinds()]
        return out + [f"tolerations[{i}].operator: {t.operator!r} (known: {', '.join(TOLERATION_OPERATORS)})"
                      for i, t in enumerate(self.tolerations) if t.operator not in TOLERATION_OPERATORS]

    def _number_problems(self) -> list[str]:
        out = [f"{key}: {getattr(self, key)!r} is not a Kubernetes quantity"
                for key in ("cpu", "memory") if not _QUANTITY.match(getattr(self, key))]
        out += [f"{key}: must not be negative, got {getattr(self, key)}"
                for key in ("gpus", "backoff_limit", "unschedulable_timeout_s") if getattr(self, key) < 0]
        out += [f"{key}: must be at least 1, got {getattr(self, key)}"
                for key in ("active_deadline_s", "ttl_after_finished_s", "max_in_flight", "workers")
                if getattr(self, key) < 1]
        if self.pack != "auto" and (isinstance(self.pack, str) or self.pack < 1):
            out.append(f"pack: must be at least 1 cell (or auto), got {self.pack!r}")
        return out


SECTION = "kubernetes"
register_backend_section(SECTION, KubernetesSpec)


def kube_config(spec: Any) -> KubernetesSpec:
    """The ``kubernetes:`` section of an :class:`~controller.plan.spec.ExperimentSpec`."""
    found = spec.backend(SECTION)
    assert isinstance(found, KubernetesSpec)
    return found


def load_section(path: str) -> KubernetesSpec:
    """A ``kubernetes:`` section from a YAML file of its own (``ctune train --kubernetes FILE``):
    the same keys as a spec's, at the top or under ``kubernetes:``."""
    from pathlib import Path

    from controller.plan.spec import SpecError
    from controller.plan.yamlload import YamlProblem, load_yaml
    from jobs.contract.typed import convert

    try:  # as strictly as a spec: a duplicate key is an error, not last-wins
        raw = load_yaml(Path(path).expanduser()) or {}
    except YamlProblem as exc:
        raise SpecError(path, [str(exc)]) from None
    except OSError as exc:
        raise SpecError(path, [f"cannot read it: {exc.strerror}"]) from None
    if isinstance(raw, dict) and isinstance(raw.get(SECTION), dict):
        raw = raw[SECTION]
    problems: list[str] = []
    section = convert(raw, KubernetesSpec, SECTION, problems)
    if problems:
        raise SpecError(path, problems)
    assert isinstance(section, KubernetesSpec)
    if section.problems():
        raise SpecError(path, [f"{SECTION}.{p}" for p in section.problems()])
    return section
