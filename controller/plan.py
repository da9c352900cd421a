"""Expand a spec into a DAG of steps keyed by the hash of their inputs.

One clustering per dataset, one inter-training per (dataset, setting), and one fine-tune
per (dataset, setting, budget, repetition); fine-tunes of the same (budget, repetition)
use the same label sample whatever the setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from controller.spec import ExperimentSpec
from jobs.step import StepSpec


@dataclass(frozen=True)
class Cell:
    dataset: str
    setting: str
    budget: int
    repetition: int
    step: str
    """Id of the fine-tune step that computes this cell."""


@dataclass(frozen=True)
class Plan:
    steps: dict[str, StepSpec]
    """Step id -> step, in dependency order."""
    cells: tuple[Cell, ...]
    clusterings: dict[str, str]
    """Dataset -> id of its clustering step."""

    def deps(self, sid: str) -> list[str]:
        """Ids of the steps this step reads (datasets are staged before, not steps)."""
        return [p.rsplit("/", 1)[1] for p in self.steps[sid].inputs.values() if p.startswith("steps/")]

    def to_json(self) -> str:
        return json.dumps({
            "steps": [{"id": sid, "kind": s.kind, "label": s.label, "inputs": s.inputs} for sid, s in self.steps.items()],
            "cells": [dataclasses.asdict(c) for c in self.cells],
        }, indent=2)


def _train_params(t) -> dict:
    return dataclasses.asdict(t)


def build_plan(spec: ExperimentSpec, dataset_prefixes: dict[str, str]) -> Plan:
    steps: dict[str, StepSpec] = {}
    cells: list[Cell] = []
    clusterings: dict[str, str] = {}

    def add(step: StepSpec) -> StepSpec:
        steps.setdefault(step.id, step)
        return step

    for d in spec.datasets:
        data = dataset_prefixes[d.name]
        starts: dict[str, dict[str, str]] = {"bert": {}}
        if "clust" in spec.settings:
            clust = add(StepSpec("cluster", dataclasses.asdict(spec.clustering), {"dataset": data},
                                 label=f"{d.name}"))
            clusterings[d.name] = clust.id
            inter = add(StepSpec(
                "intertrain",
                {"setting": "clust", "model": spec.model, "seed": spec.seed, **_train_params(spec.intertrain)},
                {"dataset": data, "clusters": clust.prefix},
                label=f"{d.name} clust",
            ))
            starts["clust"] = {"encoder": inter.prefix}
        for setting in spec.settings:
            for budget in spec.budgets:
                for rep in range(spec.repetitions):
                    ft = add(StepSpec(
                        "finetune",
                        {"model": spec.model, "budget": budget, "repetition": rep, "sample_seed": spec.seed,
                         "seed": spec.seed, **_train_params(spec.finetune)},
                        {"dataset": data, **starts[setting]},
                        label=f"{d.name} {setting} b{budget} r{rep}",
                    ))
                    cells.append(Cell(d.name, setting, budget, rep, ft.id))
    return Plan(_topological(steps), tuple(cells), clusterings)


def _topological(steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
    order: dict[str, StepSpec] = {}

    def visit(sid: str) -> None:
        if sid in order:
            return
        for p in steps[sid].inputs.values():
            dep = p.rsplit("/", 1)[1]
            if p.startswith("steps/") and dep in steps:
                visit(dep)
        order[sid] = steps[sid]

    for sid in steps:
        visit(sid)
    return order
