"""The serving stacks' own schemas, offline (make test unpacks their wheels: lock/serving-schemas.txt):
Triton's ``ModelConfig`` (model_config.proto, as tritonclient ships it generated) parses a
``config.pbtxt``; KServe's generated API models (its Python SDK's, with the Kubernetes
client's for the core types) check an ``InferenceService`` field by field: every key known,
every value of its declared type."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / ".venv" / "serving-schemas"


def _missing() -> None:
    if not (ROOT / ".installed").is_file():
        raise AssertionError(f"{ROOT} is missing: `make test` unpacks the serving schemas (make {ROOT}/.installed)")


def triton_model_config():
    """Triton's ``ModelConfig`` message class."""
    _missing()
    path = ROOT / "tritonclient" / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # alone: the package's __init__ would want grpcio
    return module.ModelConfig


def parse_triton_config(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, triton_model_config()())


def _kserve_models() -> None:
    """KServe's model modules importable without its package's __init__ (a server's worth of imports)."""
    _missing()
    for name, folder in (("kserve", ROOT / "kserve"), ("kserve.models", ROOT / "kserve" / "models")):
        if name not in sys.modules or getattr(sys.modules[name], "__path__", None) != [str(folder)]:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package


def _model_class(name: str):
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if name.startswith("V1beta1") or name.startswith("V1alpha1"):
        _kserve_models()
        return getattr(importlib.import_module(f"kserve.models.{snake}"), name)
    from kubernetes.client import models

    return getattr(models, name)


SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def _check(value, kind: str, where: str, problems: list[str]) -> None:
    if kind in ("object", "datetime"):
        return
    if kind in SCALARS:
        if not isinstance(value, SCALARS[kind]) or (kind != "bool" and isinstance(value, bool)):
            problems.append(f"{where}: {value!r} is not {kind}")
        return
    if kind.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{where}: not a list")
            return
        for i, item in enumerate(value):
            _check(item, kind[5:-1], f"{where}[{i}]", problems)
        return
    if kind.startswith(("dict(", "dict[")):  # both spellings: dict(str, X) and dict[str, X]
        if not isinstance(value, dict):
            problems.append(f"{where}: not a mapping")
            return
        inner = kind[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _check(item, inner, f"{where}.{key}", problems)
        return
    cls = _model_class(kind)
    if not isinstance(value, dict):
        problems.append(f"{where}: not a {kind} object")
        return
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{where}.{key}: {kind} has no field {key!r}")
            continue
        _check(item, cls.openapi_types[by_json[key]], f"{where}.{key}", problems)


def kserve_problems(manifest: dict) -> list[str]:
    """Every key an ``InferenceService`` does not have, and every value not of its field's type."""
    problems: list[str] = []
    if manifest.get("apiVersion") != "serving.kserve.io/v1beta1" or manifest.get("kind") != "InferenceService":
        problems.append("not a serving.kserve.io/v1beta1 InferenceService")
    _check(manifest, "V1beta1InferenceService", "InferenceService", problems)
    return problems
