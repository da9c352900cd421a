"""Packing cells: the cells that share a starting point run one after another in one process
(a local process or a Kubernetes pod), which reads the encoder, the tokenizer and the token
ids once instead of once per cell. A cell gives the same result packed or alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from jobs.contract.kinds import KINDS
from jobs.contract.steps import StepSpec


def packable() -> tuple[str, ...]:
    """The kinds whose steps are cells: many per starting point, each short."""
    return tuple(k.name for k in KINDS.values() if k.cell)


AUTO_PACK = 16
"""Cells per pack when packing is ``auto`` and it pays (see the backends)."""


@dataclass(frozen=True)
class JobUnit:
    """What one process (or Job) runs: one step, or several cells of the same kind, in order."""

    steps: tuple[StepSpec, ...]

    @property
    def kind(self) -> str:
        return self.steps[0].kind

    @property
    def key(self) -> str:
        """The step id, or for a pack a digest of its step ids."""
        if len(self.steps) == 1:
            return self.steps[0].id
        return hashlib.sha256(",".join(s.id for s in self.steps).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"ct-{self.kind}-{self.key}"


def pack_units(steps: list[StepSpec], pack: int | dict[str, int]) -> list[JobUnit]:
    """Group the cells that share a starting point (the same inputs and model: they differ by
    their sample and options only) into units of at most ``pack`` steps (per kind when a
    mapping); every other step is a unit of its own. Deterministic in the steps' order, so a
    restarted controller forms the same units."""
    size = pack if isinstance(pack, dict) else {kind: pack for kind in packable()}
    units: list[JobUnit] = []
    groups: dict[tuple, list[StepSpec]] = {}
    for s in steps:
        if size.get(s.kind, 1) <= 1:
            units.append(JobUnit((s,)))
            continue
        start = (s.kind, tuple(sorted(s.inputs.items())), getattr(s.params, "model", None))
        groups.setdefault(start, []).append(s)
    for (kind, *_), members in groups.items():
        n = size[kind]
        units += [JobUnit(tuple(members[i:i + n])) for i in range(0, len(members), n)]
    return units
