"""Check, before anything runs, that the spec's model can be loaded (without loading it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from jobs.contract.errors import BadInput
from jobs.contract.models import PACKAGED, distribution_of, package_of
from jobs.contract.outputs import PROBE_HEAD


class ModelError(BadInput):
    pass


def _check_s3(name: str) -> dict:
    from jobs.storage import open_store, split_s3_uri

    root, key = split_s3_uri(name)
    store = open_store(root)
    if not key or not store.exists(f"{key}/config.json"):
        raise ModelError(f"model {name} has no config.json in the store")
    _check_tokenizer(name, {k.rsplit("/", 1)[-1] for k in store.list(key)})
    return _config(store.read_bytes(f"{key}/config.json"), f"{name}/config.json")


def _check_hub(name: str) -> dict:
    """The model's config.json from the Hugging Face hub (or its cache when offline)."""
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(name, "config.json"))
    except Exception as exc:  # hub errors come in many types; all mean "cannot use it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"unknown model {name!r}: not {', '.join(PACKAGED)}, not a local folder, "
                         f"and not loadable from the Hugging Face hub ({first})") from None
    return _config(path.read_bytes(), f"{name}/config.json")


def _config(raw: bytes, source: str) -> dict:
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{source}: not valid JSON") from None
    if not isinstance(config, dict):
        raise ModelError(f"{source}: expected a JSON object")
    return config


def check_model(name: str, local: bool = True, hub: bool = True) -> dict | None:
    """The model's config (None when it cannot be read from here: a packaged model run only
    in a cluster's image, or a hub id when ``hub`` is off). ``local``: the steps run on this
    machine, so a packaged model must be installed here (a cluster's image carries it)."""
    package = package_of(name)
    if package is not None:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            if local:
                raise ModelError(f"model {name!r} needs the package {distribution_of(package)}")
            return None
        folder = Path(next(iter(found.submodule_search_locations))) / "model"
        return _config((folder / "config.json").read_bytes(), name) if (folder / "config.json").is_file() else None
    if name.startswith("s3://"):
        return _check_s3(name)
    path = Path(name).expanduser()
    if not path.exists() and name.startswith(("/", "./", "../", "~")):  # a path, never a hub id
        raise ModelError(f"model folder {name} does not exist")
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {name} has no config.json")
        weight_names(path)
        _check_tokenizer(name, {p.name for p in path.iterdir()})
        return _config((path / "config.json").read_bytes(), f"{name}/config.json")
    return _check_hub(name) if hub else None


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def _check_tokenizer(name: str, files: set[str]) -> None:
    """transformers builds an empty tokenizer (5 special tokens) from a folder without its files."""
    if not files & set(TOKENIZER_FILES):
        raise ModelError(f"model folder {name} has no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, ...)")


def check_lengths(name: str, config: dict | None, lengths: dict[str, int]) -> None:
    """Each ``section.max_length`` within the model's positions (BERT-like models: 512)."""
    positions = (config or {}).get("max_position_embeddings")
    if not isinstance(positions, int):
        return
    over = [f"{key}: {value} > {positions}" for key, value in lengths.items() if value > positions]
    if over:
        raise ModelError(f"max_length beyond the {positions} positions of model {name}: {', '.join(over)}")

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
HEADS = ("classifier.weight", "classifier.out_proj.weight", "score.weight")
"""Tensor names (suffixes) of a sequence-classification head, across the architectures transformers has."""


def safetensors_names(path: Path) -> list[str]:
    """The tensor names of a .safetensors file, after checking its header and length (no torch)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, 100_000_000):
            raise ModelError(f"{path}: corrupt weights (no safetensors header)")
        try:
            header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError):
            raise ModelError(f"{path}: corrupt weights (unreadable safetensors header)") from None
    if 8 + n + end != size:
        raise ModelError(f"{path}: corrupt weights ({size:,} bytes where the header says {8 + n + end:,}: truncated?)")
    return [k for k in header if k != "__metadata__"]


def weight_names(folder: Path) -> list[str] | None:
    """Tensor names of a local model folder (None when its weights are not safetensors),
    after checking that weights are there and, for safetensors, whole."""
    found = [name for name in WEIGHTS if (folder / name).is_file()]
    if not found:
        raise ModelError(f"model folder {folder} has no weights ({' or '.join(WEIGHTS[:2])})")
    if found[0] == "model.safetensors":
        return safetensors_names(folder / found[0])
    if found[0] == "model.safetensors.index.json":
        try:
            shards = sorted(set(json.loads((folder / found[0]).read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{folder / found[0]}: unreadable shard index") from None
        names = []
        for shard in shards:
            if not (folder / shard).is_file():
                raise ModelError(f"model folder {folder} lacks the weight shard {shard}")
            names += safetensors_names(folder / shard)
        return names
    return None


def check_classifier(folder: Path) -> None:
    """A folder ``ctune predict`` can use: a config, whole weights, and a trained classification
    head (an encoder alone would predict from a randomly initialised one)."""
    if not folder.is_dir():
        raise ModelError(f"model folder {folder}: no such folder")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder} is not a model folder (no config.json)") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{folder / 'config.json'}: not valid JSON") from None
    names = weight_names(folder)
    if (folder / PROBE_HEAD).is_file():  # an encoder and a linear probe beside it (ctune train's default)
        return
    architectures = config.get("architectures") or [] if isinstance(config, dict) else []
    has_head = (any(n.endswith(h) for n in names for h in HEADS) if names is not None
                else any(str(a).endswith("ForSequenceClassification") for a in architectures))
    if not has_head:
        raise ModelError(f"model folder {folder} has no classification head (an encoder, not a classifier: "
                         "train one with ctune train)")
