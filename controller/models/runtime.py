"""Which graph ``ctune predict`` and batch scoring run for a version: its ONNX graph with
onnxruntime (no torch) when it has one, the int8 graph only where the gate accepted it against
the fp32 one on the version's dev set, and the torch model when asked (or for a version
published before graphs were exported)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.models.registry import RegistryError

AUTO, ONNX, INT8, TORCH = "auto", "onnx", "onnx-int8", "torch"
RUNTIMES = (AUTO, ONNX, INT8, TORCH)


@dataclass(frozen=True)
class Runtime:
    name: str
    """``onnx``, ``onnx-int8`` or ``torch``."""
    why: str

    @property
    def onnx(self) -> bool:
        return self.name != TORCH

    @property
    def int8(self) -> bool:
        return self.name == INT8


def choose_runtime(record: dict, asked: str = AUTO) -> Runtime:
    """``asked``: one of ``RUNTIMES``. Raises ``RegistryError`` when the version lacks what was asked for."""
    if asked not in RUNTIMES:
        raise RegistryError(f"--runtime {asked!r} is none of {', '.join(RUNTIMES)}")
    version = record.get("version", "?")
    graphs = record.get("onnx") or {}
    int8 = graphs.get("int8") or {}
    if asked == TORCH:
        return Runtime(TORCH, "asked for")
    if not graphs:
        if asked == AUTO:
            return Runtime(TORCH, "the version has no ONNX graph (published before graphs were exported)")
        raise RegistryError(f"version {version} has no ONNX graph (published before graphs were exported): "
                            "`ctune predict --runtime torch` runs its model folder")
    if asked == ONNX:
        return Runtime(ONNX, "asked for")
    gate = int8.get("gate") or {}
    verdict = f"the gate's word on it against the fp32 graph: {gate.get('outcome', 'none')}"
    if asked == INT8:
        if not int8:
            raise RegistryError(f"version {version} has no int8 graph: use --runtime onnx")
        return Runtime(INT8, "asked for" + ("" if int8.get("accepted") else f", though not accepted ({verdict})"))
    if int8.get("accepted"):
        return Runtime(INT8, f"the int8 graph, which the gate accepted against the fp32 one ({gate.get('why', '')})")
    return Runtime(ONNX, f"the fp32 graph ({verdict})" if int8 else "the fp32 graph (no int8 graph)")
