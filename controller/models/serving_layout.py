"""A version's ONNX graph as a Triton model repository: what Triton's ONNX backend, and KServe's
``onnx`` model format (served by Triton: ``k8s/serving``), load.

``ctune models serve REGISTRY[@VERSION] --out s3://bucket/serving/NAME`` writes a repository per
version, never changed after (a server starting while another version is written must not
mix two versions' files)::

    <out>/<version>/<name>/config.pbtxt    platform onnxruntime_onnx, inputs, output, batching
    <out>/<version>/<name>/1/model.onnx    the version's fp32 graph (the int8 one when asked)
    <out>/<version>/<name>/labels.txt      one label per line: Triton's classification extension reads it
    <out>/<version>/<name>/tokenizer.json  for clients: Triton takes token ids, not texts
    <out>/<version>/<name>/labels.json

The config's ``parameters`` name the registry version it came from. A server moves to another
version when its repository path (KServe's ``storageUri``) is changed to that version's.
The fp32 graph is the default: Triton batches requests together, and the int8 graph's output
for a text depends on what it is batched with (``jobs.serving.INT8_BATCH``), so the gate's
verdict on it (judged one text at a time) does not carry over to a batching server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from controller.models.registry import Registry, RegistryError
from controller.models.runtime import AUTO, ONNX, choose_runtime
from jobs.serving import GRAPH, INPUTS, INT8, LABELS, OUTPUT, TOKENIZER
from jobs.storage import open_store, split_s3_uri

MAX_BATCH = 64
VERSION_DIR = "1"
LABELS_TXT = "labels.txt"
CONFIG = "config.pbtxt"


def triton_config(name: str, labels: list[str], version: str, graph: str) -> str:
    """``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``) for the graph."""
    inputs = ",\n".join(f'  {{ name: "{n}" data_type: TYPE_INT64 dims: [ -1 ] }}' for n in INPUTS)
    return (f'name: "{name}"\n'
            'platform: "onnxruntime_onnx"\n'
            f"max_batch_size: {MAX_BATCH}\n"
            f"input [\n{inputs}\n]\n"
            f'output [\n  {{ name: "{OUTPUT}" data_type: TYPE_FP32 dims: [ {len(labels)} ] '
            f'label_filename: "{LABELS_TXT}" }}\n]\n'
            "dynamic_batching { }\n"
            "version_policy: { latest: { num_versions: 1 } }\n"
            f'parameters {{ key: "cluster_tune_version" value: {{ string_value: "{version}" }} }}\n'
            f'parameters {{ key: "cluster_tune_graph" value: {{ string_value: "{graph}" }} }}\n')


def repository_files(folder: Path, name: str, version: str, int8: bool) -> dict[str, Path | bytes]:
    """Every file of the repository (relative path -> a file here, or its bytes); the graph last."""
    labels = [str(x) for x in json.loads((folder / LABELS).read_text(encoding="utf-8"))["labels"]]
    graph = INT8 if int8 else GRAPH
    return {f"{name}/{CONFIG}": triton_config(name, labels, version, graph).encode(),
            f"{name}/{LABELS_TXT}": ("\n".join(labels) + "\n").encode(),
            f"{name}/{TOKENIZER}": folder / TOKENIZER, f"{name}/{LABELS}": folder / LABELS,
            f"{name}/{VERSION_DIR}/{GRAPH}": folder / graph}


def write_repository(registry: Registry, version: str, out: str, name: str, asked: str,
                     say: Callable[[str], None]) -> str:
    """The version's Triton repository under ``out`` (``s3://...`` or a folder); its URI."""
    if asked == AUTO:
        asked = ONNX
    runtime = choose_runtime(registry.record(version), asked)
    folder = registry.fetch_serving(version)
    if folder is None or not runtime.onnx:
        raise RegistryError(f"version {version} has no ONNX graph to serve ({runtime.why})")
    if out.startswith("s3://"):
        root, prefix = split_s3_uri(out.rstrip("/"))
    else:
        path = Path(out).expanduser().resolve()
        root, prefix = str(path.parent), path.name
    if not prefix:
        raise RegistryError(f"--out {out}: name a prefix under the bucket (s3://bucket/serving/NAME)")
    store = open_store(root)
    for relative, source in repository_files(folder, name, version, runtime.int8).items():
        key = f"{prefix}/{version}/{relative}"
        if isinstance(source, Path):
            store.upload_file(source, key)
        else:
            store.write_bytes(key, source)
    uri = f"{root.rstrip('/')}/{prefix}/{version}"
    say(f"Triton model repository {uri}: model {name}, version {version}, {runtime.name} graph ({runtime.why}); "
        f"serve it with storageUri: {uri}")
    return uri
