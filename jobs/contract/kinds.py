"""Step kinds: one descriptor each, read by every place that treats kinds apart.

A :class:`StepKind` says what a step of its kind takes (its parameter class, the roles of its
inputs), what it must write before it commits, where it wants to run (a GPU or not), whether
its steps are result cells that pack into one process, what its job imports beyond torch and
transformers, and which module runs it (``python -m jobs <kind>``). The spec's checks, the
plan, packing, the local backend's package check, the Kubernetes Jobs' GPU requests and the
job runner all read it here; none keeps a table of kinds of its own.

A new kind is a descriptor, a parameter class and a job module. :func:`register` adds one at
run time; ``CTUNE_PLUGINS`` (module names, comma-separated) are imported by the command line
and by every job process, so a kind defined outside this package runs through ``ctune run``
(``tests/toy_kind.py`` is the worked example).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from jobs.contract import outputs
from jobs.contract.errors import JobError
from jobs.contract.inputs import BESIDE, CLASSIFIER, CLUSTERS, DATASET, DEV, EMBEDDINGS, ENCODER, Roles
from jobs.contract.params import (
    AnalyzeParams,
    ClassicParams,
    ClusterParams,
    DriftParams,
    EmbedParams,
    EvaluateParams,
    ExportParams,
    FinetuneParams,
    FitParams,
    IntertrainParams,
    Params,
    SetFitParams,
)

PLUGINS_ENV = "CTUNE_PLUGINS"


def _none(params: Params) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class StepKind:
    name: str
    params: type[Params]
    """Its parameters (``params.kind`` is ``name``)."""
    roles: Roles
    """The inputs it takes, by role."""
    outputs: tuple[str, ...]
    """What a step must have written before it commits."""
    gpu: bool = False
    """Wants a GPU on a cluster (the default of ``kubernetes.gpu_kinds``)."""
    cell: bool = False
    """A result cell of the grid (a labeled sample, predictions, metrics): many per starting
    point, each short, so cells that share one pack into one process."""
    packages: Callable[[Params], tuple[str, ...]] = field(default=_none)
    """What a step with these parameters imports beyond torch and transformers."""
    module: str = ""
    """The job module (its ``run(ctx)``); ``jobs.kinds.<name>`` when empty."""

    @property
    def job_module(self) -> str:
        return self.module or f"jobs.kinds.{self.name}"


def _sib(params: Params) -> tuple[str, ...]:
    return ("sib",) if isinstance(params, ClusterParams) and params.method == "sib" else ()


def _setfit(params: Params) -> tuple[str, ...]:
    return ("setfit",)


_MODEL = f"{outputs.MODEL}/config.json"

KINDS: dict[str, StepKind] = {k.name: k for k in (
    StepKind("cluster", ClusterParams, Roles((DATASET,), (EMBEDDINGS,)), (outputs.ASSIGNMENTS, outputs.CLUSTERS),
             packages=_sib),
    StepKind("intertrain", IntertrainParams, Roles((DATASET,), (CLUSTERS, ENCODER)), (_MODEL, outputs.TRAIN_SUMMARY),
             gpu=True),
    StepKind("finetune", FinetuneParams, Roles((DATASET,), (ENCODER, CLUSTERS)), outputs.CELL, gpu=True, cell=True),
    StepKind("embed", EmbedParams, Roles((DATASET,), (ENCODER,)), (outputs.TRAIN_EMBEDDINGS,), gpu=True),
    StepKind("classic", ClassicParams, Roles((DATASET,), (EMBEDDINGS, BESIDE, CLUSTERS), needs=((BESIDE, EMBEDDINGS),)),
             outputs.CELL, cell=True),
    StepKind("fit", FitParams, Roles((DATASET,), (ENCODER, CLUSTERS)), (_MODEL, outputs.FIT_SUMMARY), gpu=True),
    StepKind("analyze", AnalyzeParams, Roles((DATASET, ENCODER)), (outputs.NED,), gpu=True),
    StepKind("setfit", SetFitParams, Roles((DATASET,), (ENCODER, CLUSTERS)), outputs.CELL, gpu=True, cell=True,
             packages=_setfit),
    StepKind("evaluate", EvaluateParams, Roles((DATASET,)), (outputs.DEV_LABELS,), gpu=True),
    StepKind("export", ExportParams, Roles((DATASET, CLASSIFIER)), (f"{outputs.SERVING}/model.onnx", outputs.EXPORT)),
    StepKind("drift", DriftParams, Roles((DATASET, CLUSTERS, CLASSIFIER), (DEV,)), (outputs.DRIFT, outputs.TO_LABEL),
             gpu=True),
)}
"""Every step kind, by name, in the order they are listed to a user."""


def register(kind: StepKind) -> None:
    if kind.params.kind != kind.name:
        raise JobError(f"{kind.params.__name__}.kind is {kind.params.kind!r}, not the kind {kind.name!r}")
    KINDS[kind.name] = kind


def step_kinds() -> tuple[str, ...]:
    """Every kind's name (those registered by plugins too)."""
    return tuple(KINDS)


def known_kind(name: object) -> StepKind:
    """The kind of that name, or a ``JobError`` listing the known ones."""
    if not isinstance(name, str) or name not in KINDS:
        raise JobError(f"unknown step kind {name!r} (known: {', '.join(KINDS)})")
    return KINDS[name]


def step_kind(name: str) -> StepKind:
    return KINDS[name]


def load_plugins() -> None:
    """Import the modules ``$CTUNE_PLUGINS`` names (each registers what it adds)."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise JobError(f"{PLUGINS_ENV}: cannot import {name!r}: {exc}") from None
