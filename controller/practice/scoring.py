"""Batch scoring: every text file under a prefix labeled by one version of a registry, with its
ONNX graph (no torch), one predictions file per input file.

``ctune predict REGISTRY[@VERSION] s3://bucket/texts/ --out s3://bucket/predictions/``: each
``.jsonl``/``.csv``/``.txt`` object under the texts prefix gives
``<out>/<version>/<its path under the prefix>.jsonl``, one row per text with the version, the
label and each label's probability, written as one object once the whole file is scored. So
an input file is scored once per version (a rerun skips every file that version scored), a
killed run loses at most the file it was on, and after a promotion the next run scores every
file again with the new version, beside the old version's predictions, and says so. The
version is resolved once, when the run starts: with ``--backend kubernetes`` by the command
that creates the Jobs, so their pods retried after a kill go on with the same version (the
CronJob's pod resolves it itself: its retry after a promotion scores with the new version).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from controller.models.registry import Registry, RegistryError, is_registry, split_ref
from controller.models.runtime import TORCH, Runtime, choose_runtime
from controller.practice.corpus import object_texts
from controller.run.live import say
from jobs.contract.errors import EXIT_OK
from jobs.data import DataError
from jobs.serving import OnnxClassifier
from jobs.storage import Store, open_store, split_s3_uri

FORMATS = (".jsonl", ".csv", ".txt")
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Place:
    """A prefix of a store: ``s3://bucket/some/prefix/`` or a folder."""

    store: Store
    prefix: str
    uri: str

    @staticmethod
    def of(uri: str) -> Place:
        if uri.startswith("s3://"):
            root, key = split_s3_uri(uri)
            return Place(open_store(root), key.strip("/"), uri.rstrip("/"))
        folder = Path(uri).expanduser().resolve()  # the folder's parent is the store: a store lists under a prefix
        return Place(open_store(str(folder.parent)), folder.name, str(folder))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative_keys(self) -> list[str]:
        """Every object under the prefix, as a path relative to it."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return [k[cut:] for k in self.store.list(self.prefix)]


def shard_of(relative: str, shards: int) -> int:
    """Which of ``shards`` Jobs scores an input file (by a digest of its path: stable as files arrive)."""
    return int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big") % shards


def input_files(texts: Place) -> list[str]:
    """The text files under the prefix, relative to it, in key order."""
    return sorted(k for k in texts.relative_keys() if k.endswith(FORMATS) and not Path(k).name.startswith("."))


def output_name(version: str, relative: str) -> str:
    """The input's path under the version, its extension kept (``a.csv`` and ``a.txt`` are two files)."""
    return f"{version}/{relative}{SUFFIX}"


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (0 <= I < N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise DataError(f"--shard {text!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= i < n:
        raise DataError(f"--shard {text!r}: I must be in 0..N-1")
    return i, n


@dataclass
class Scored:
    version: str
    scored: list[str]
    skipped: list[str]
    texts: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    """Input files that could not be read (path -> why): the others are scored all the same."""

    def line(self) -> str:
        rate = f", {self.texts / self.seconds:.0f} texts/s" if self.seconds > 0 and self.texts else ""
        failed = f", {len(self.failed)} could not be read" if self.failed else ""
        return (f"version {self.version}: {len(self.scored)} file(s) scored ({self.texts} texts{rate}), "
                f"{len(self.skipped)} scored by it before (skipped){failed}")


CHUNK = 4096
"""Texts tokenized and run at once: a large file's peak memory stays that of a chunk's."""


def _rows(model: OnnxClassifier, texts: list[str], version: str) -> Iterator[str]:
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        for text, p in zip(chunk, model.probabilities(chunk)):
            yield json.dumps({"version": version, "text": text, "label": model.labels[int(p.argmax())],
                              "score": round(float(p.max()), 6),
                              "scores": {n: round(float(v), 6) for n, v in zip(model.labels, p)}},
                             ensure_ascii=False)


def earlier_versions(out: Place, version: str) -> list[str]:
    """Other versions whose predictions lie under the output prefix."""
    return sorted({k.split("/", 1)[0] for k in out.relative_keys() if "/" in k} - {version})


def score_files(folder: Path, runtime: Runtime, version: str, texts: Place, out: Place, text_field: str,
                shard: tuple[int, int] = (0, 1), tell: Callable[[str], None] = say) -> Scored:
    """Score every input file of this shard that ``version`` has not scored yet."""
    mine = [r for r in input_files(texts) if shard_of(r, shard[1]) == shard[0]]
    if not mine and shard == (0, 1):
        raise DataError(f"{texts.uri}: no {', '.join(FORMATS)} files there")
    result = Scored(version, [], [])
    model: OnnxClassifier | None = None
    t0 = time.time()
    for relative in mine:
        target = out.key(output_name(version, relative))
        if out.store.exists(target):
            result.skipped.append(relative)
            continue
        model = model or OnnxClassifier.load(folder, runtime.int8)
        try:
            batch = list(object_texts(texts.store, texts.store.root, texts.key(relative), text_field))
        except DataError as exc:  # one bad file is named; the others are scored
            result.failed[relative] = str(exc)
            tell(f"cannot score {texts.key(relative)}: {exc}")
            continue
        body = "".join(f"{row}\n" for row in _rows(model, batch, version))
        out.store.write_bytes(target, body.encode("utf-8"))  # one object: there whole, or not at all
        result.scored.append(relative)
        result.texts += len(batch)
        tell(f"scored {texts.key(relative)}: {len(batch)} texts -> {out.uri}/{output_name(version, relative)}")
    result.seconds = time.time() - t0
    return result


def resolve(registry_ref: str, asked: str) -> tuple[Registry, str, Runtime]:
    uri, version = split_ref(registry_ref)
    if not is_registry(uri):
        raise RegistryError(f"{uri}: batch scoring reads a version of a model registry (REGISTRY[@VERSION])")
    registry = Registry(uri)
    registry.store.check()
    version = registry.resolve(version)
    runtime = choose_runtime(registry.record(version), asked)
    if runtime.name == TORCH:
        why = ("--runtime torch is for one file at a time" if asked == TORCH else
               f"version {version} has none ({runtime.why}); `ctune predict` on one file with --runtime torch runs it")
        raise RegistryError(f"batch scoring runs a version's ONNX graph (no torch where it runs): {why}")
    return registry, version, runtime


def announce(registry: Registry, version: str, runtime: Runtime, out: Place, tell: Callable[[str], None]) -> None:
    current = registry.pointer().current
    which = "the current version" if version == current else f"not the current one ({current})"
    tell(f"scoring with version {version}, {which}: {runtime.name}, {runtime.why}")
    others = earlier_versions(out, version)
    if others:
        tell(f"predictions by other versions under {out.uri}: {', '.join(others)} (kept); each file is scored again "
             f"with {version} into {out.uri}/{version}/")


def check_places(texts: Place, out: Place, registry: str) -> None:
    """A bucket's root is no prefix; predictions inside the texts (or the other way round) would
    be scored as texts by the next run."""
    for what, place in (("TEXTS", texts), ("--out", out)):
        if not place.prefix:
            raise DataError(f"{what} {place.uri}: name a prefix under the bucket (s3://bucket/some/prefix/)")
    for (a, x), (b, y) in ((("--out", out.uri), ("TEXTS", texts.uri)), (("TEXTS", texts.uri), ("--out", out.uri)),
                           (("--out", out.uri), ("the registry", registry))):
        if f"{x}/".startswith(f"{y}/"):
            raise DataError(f"{a} {x} lies inside {b} {y}: give them apart (the next run would read its own output)")


def prepared(args: argparse.Namespace) -> tuple[Registry, str, Runtime, Place, Place]:
    """``ctune predict REGISTRY[@VERSION] TEXTS_PREFIX --out OUT_PREFIX``: the version (resolved
    once, here), how it runs, where the texts are and where the predictions go."""
    registry, version, runtime = resolve(args.model, args.runtime)
    texts, out = Place.of(args.texts), Place.of(args.out)
    check_places(texts, out, registry.uri)
    texts.store.check()
    out.store.check()
    return registry, version, runtime, texts, out


def score_here(args: argparse.Namespace, registry: Registry, version: str, runtime: Runtime, texts: Place,
               out: Place) -> int:
    announce(registry, version, runtime, out, say)
    folder = registry.fetch_serving(version)
    assert folder is not None  # resolve() refused a version without a graph
    shard = parse_shard(args.shard) if args.shard else (0, 1)
    result = score_files(folder, runtime, version, texts, out, args.text_field, shard)
    say(result.line())
    if result.failed:
        raise DataError(f"{len(result.failed)} input file(s) could not be scored (named above); the others were")
    return EXIT_OK


def count_outputs(out: Place, version: str) -> int:
    listed = out.store.list(out.key(version))
    return sum(1 for k in listed if k.endswith(SUFFIX))


__all__ = ["Place", "Scored", "count_outputs", "input_files", "output_name", "prepared", "score_files", "score_here",
           "shard_of"]
