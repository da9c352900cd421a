"""Check, before anything runs, that the spec's model can be loaded (without loading it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from jobs.contract.errors import BadInput
from jobs.contract.models import PACKAGED, distribution_of, package_of


class ModelError(BadInput):
    pass


def _check_s3(name: str) -> None:
    from jobs.storage import open_store, split_s3_uri

    root, key = split_s3_uri(name)
    if not key or not open_store(root).exists(f"{key}/config.json"):
        raise ModelError(f"model {name} has no config.json in the store")


def _check_hub(name: str) -> None:
    """The model's config.json from the Hugging Face hub (or its cache when offline)."""
    from huggingface_hub import hf_hub_download

    try:
        json.loads(Path(hf_hub_download(name, "config.json")).read_text(encoding="utf-8"))
    except Exception as exc:  # hub errors come in many types; all mean "cannot use it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"unknown model {name!r}: not {', '.join(PACKAGED)}, not a local folder, "
                         f"and not loadable from the Hugging Face hub ({first})") from None


def check_model(name: str, local: bool = True) -> None:
    """``local``: the steps run on this machine, so a packaged model must be installed here
    (a cluster's image carries it)."""
    package = package_of(name)
    if package is not None:
        if local and importlib.util.find_spec(package) is None:
            raise ModelError(f"model {name!r} needs the package {distribution_of(package)}")
        return
    if name.startswith("s3://"):
        _check_s3(name)
        return
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {name} has no config.json")
        return
    _check_hub(name)
