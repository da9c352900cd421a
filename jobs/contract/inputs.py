"""What a step reads: the roles of its inputs, and which roles each kind takes from where.

A step's ``inputs`` map a role to the store prefix of what it reads: a staged dataset or a
committed step. The controller builds them (``controller.plan.graph``), a job reads them by role
(``StepContext.input``). ``StepSpec`` checks them against its kind's roles
(``jobs.contract.kinds``) when it is built, on the
controller's side and again when a job reads its ``step.json``, so a role misspelled on
either side, a required one missing, or an input from the wrong kind of step is named at
once rather than found as a ``KeyError`` deep in a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobs.contract.errors import JobError

DATASET = "dataset"
"""The staged dataset (``datasets/<name>-<digest>``): every step reads one."""
CLUSTERS = "clusters"
"""A ``cluster`` step: the inter-training's targets, or the cells' cluster ids (cluster
sampling, self-training's agreement filter, the cluster-only classifier)."""
ENCODER = "encoder"
"""An ``intertrain`` step: the encoder to start from instead of the base model."""
EMBEDDINGS = "embeddings"
"""An ``embed`` step: the vectors a probe or a dense clustering reads."""
BESIDE = "beside"
"""A second ``embed`` step, concatenated to ``embeddings`` (the ``clust+concat`` probe)."""
CLASSIFIER = "classifier"
"""A ``fit`` step: the trained model a retraining round's ``drift`` step labels texts with, and
the ``export`` step writes as an ONNX graph."""
DEV = "dev"
"""A staged dev set (its ``train`` split): placed among a round's clusters by the ``drift`` step."""

# ``staging.DATASETS`` and ``steps.step_prefix(kind, ...)`` spelled out: this module cannot import them
# (steps imports it; staging -> integrity -> steps); tests/test_step_contract.py checks they agree
SOURCE: dict[str, str] = {DATASET: "datasets", CLUSTERS: "steps/cluster", ENCODER: "steps/intertrain",
                          EMBEDDINGS: "steps/embed", BESIDE: "steps/embed",
                          CLASSIFIER: "steps/fit", DEV: "datasets"}
"""Per role, the store prefix its input lies under."""


@dataclass(frozen=True)
class Roles:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    needs: tuple[tuple[str, str], ...] = ()
    """(role, role): the first is only taken together with the second."""


def check_inputs(kind: str, roles: Roles, inputs: Mapping[str, str]) -> None:
    """Raise ``JobError`` naming the first input a ``kind`` step (taking ``roles``) cannot take."""
    taken = (*roles.required, *roles.optional)
    for role, prefix in inputs.items():
        if role not in taken:
            raise JobError(f"a {kind} step takes no input {role!r} (it takes: {', '.join(taken)})")
        if not isinstance(prefix, str) or not prefix.startswith(f"{SOURCE[role]}/"):
            raise JobError(f"a {kind} step's input {role!r} must lie under {SOURCE[role]}/, not {prefix!r}")
    for role in roles.required:
        if role not in inputs:
            raise JobError(f"a {kind} step needs an input {role!r}")
    for role, other in roles.needs:
        if role in inputs and other not in inputs:
            raise JobError(f"a {kind} step's input {role!r} needs an input {other!r} too")
