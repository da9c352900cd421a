"""Check, before anything runs, that the spec's model can be loaded."""

from __future__ import annotations

from pathlib import Path

from jobs.models import PACKAGED


class ModelError(ValueError):
    pass


def check_model(name: str) -> None:
    if name in PACKAGED:
        try:
            __import__(PACKAGED[name])
        except ImportError:
            raise ModelError(f"model {name!r} needs the package {PACKAGED[name].replace('_', '-')}") from None
        return
    if name.startswith("s3://"):
        from jobs.storage import open_store, split_s3_uri

        root, key = split_s3_uri(name)
        if not key or not open_store(root).exists(f"{key}/config.json"):
            raise ModelError(f"model {name} has no config.json in the store")
        return
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {name} has no config.json")
        return
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except Exception as exc:  # hub errors come in many types; all mean "cannot use it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"unknown model {name!r}: not {', '.join(PACKAGED)}, not a local folder, "
                         f"and not loadable from the Hugging Face hub ({first})") from None
