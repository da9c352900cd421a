"""k8s/serving and `ctune models serve`: a version's ONNX graph as a Triton model repository,
checked against Triton's own ModelConfig schema and run under onnxruntime as Triton's ONNX
backend would feed it; KServe's InferenceService checked against KServe's API models. The rig
runs neither KServe nor Triton: what a running server would add is not tested here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from controller import cli
from controller.models.registry import Registry
from tests.conftest import tiny_onnx_classifier
from tests.serving_schemas import kserve_problems, parse_triton_config
from tests.test_kube_render import CURRENT

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent


def test_a_version_becomes_a_triton_repository_that_triton_s_schema_and_onnxruntime_accept(tiny_model, tmp_path):
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    graph = tiny_onnx_classifier(tiny_model, tmp_path / "v", labels=("World", "Sports", "Business"))
    registry = Registry(str(tmp_path / "models" / "support"))
    record = {"version": "v1aaaaaaaaaaaaaa", "labels": ["World", "Sports", "Business"],
              "onnx": {"opset": 18, "int8": {"accepted": True, "gate": {"outcome": "promote", "why": "no worse"}}}}
    registry.publish("v1aaaaaaaaaaaaaa", graph.parent / "model", record, "card", None, graph)
    assert registry.move(registry.pointer(), "promote", "v1aaaaaaaaaaaaaa", "first")
    serving = tmp_path / "serving" / "support"
    assert cli.main(["models", "serve", registry.uri, "--out", str(serving)]) == 0
    out = serving / "v1aaaaaaaaaaaaaa"  # a repository per version, never rewritten by another's
    model = out / "support"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "support/1/model.onnx", "support/config.pbtxt", "support/labels.json", "support/labels.txt",
        "support/tokenizer.json"]
    config = parse_triton_config((model / "config.pbtxt").read_text())
    assert config.name == "support" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 64
    assert config.parameters["cluster_tune_version"].string_value == "v1aaaaaaaaaaaaaa"
    # the fp32 graph by default, though the gate accepted the int8 one: Triton batches requests, and
    # the int8 graph's output depends on the batch
    assert config.parameters["cluster_tune_graph"].string_value == "model.onnx"
    assert (model / "1" / "model.onnx").read_bytes() == (graph / "model.onnx").read_bytes()
    # the config's inputs and output are the graph's: names, types, and shapes less the batch axis
    onnx_graph = onnx.load(str(model / "1" / "model.onnx")).graph
    elem = {7: "TYPE_INT64", 1: "TYPE_FP32"}
    types = config.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"].enum_type
    for tensor, declared in [*zip(onnx_graph.input, config.input), *zip(onnx_graph.output, config.output)]:
        dims = [d.dim_value or -1 for d in tensor.type.tensor_type.shape.dim]
        assert tensor.name == declared.name and elem[tensor.type.tensor_type.elem_type] == types.values_by_number[
            declared.data_type].name
        assert dims[0] == -1 and list(declared.dims) == dims[1:]
    assert (model / "labels.txt").read_text().splitlines() == ["World", "Sports", "Business"]
    # a full batch, as Triton's dynamic batcher would send it, runs under onnxruntime
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    encoded = tokenizer.encode_batch([f"text {i} " * (i % 7 + 1) for i in range(config.max_batch_size)])
    feed = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
    probs = ort.InferenceSession(str(model / "1" / "model.onnx")).run(["probabilities"], feed)[0]
    assert probs.shape == (64, 3) and np.allclose(probs.sum(1), 1, atol=1e-4)
    # with --runtime onnx-int8: the int8 graph
    assert cli.main(["models", "serve", registry.uri, "--out", str(serving), "--runtime", "onnx-int8"]) == 0
    assert (model / "1" / "model.onnx").read_bytes() == (graph / "model.int8.onnx").read_bytes()


def test_triton_s_schema_refuses_a_config_it_does_not_know():
    from google.protobuf import text_format

    with pytest.raises(text_format.ParseError, match="no field named"):
        parse_triton_config('name: "x"\nplatform: "onnxruntime_onnx"\nmax_batch: 8\n')


def test_the_inference_service_is_kserve_s_and_reads_what_ctune_models_serve_writes():
    manifest = yaml.safe_load((REPO / "k8s" / "serving" / "inferenceservice.yaml").read_text())
    assert kserve_problems(manifest) == []
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "onnx" and model["protocolVersion"] == "v2"
    # a version's repository as `ctune models serve --out s3://cluster-tune/serving/support` writes it:
    # OUT/VERSION, holding the model named after the registry (its default), as the service is
    out, version = model["storageUri"].rsplit("/", 1)
    assert version == "VERSION" and out.rsplit("/", 1)[1] == manifest["metadata"]["name"] == "support"
    kustomization = yaml.safe_load((REPO / "k8s" / "serving" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["serviceaccount.yaml", "inferenceservice.yaml"]
    account = yaml.safe_load((REPO / "k8s" / "serving" / "serviceaccount.yaml").read_text())
    secret = yaml.safe_load((REPO / "k8s" / "serving" / "s3-secret.template.yaml").read_text())
    assert account["metadata"]["name"] == manifest["spec"]["predictor"]["serviceAccountName"]
    assert account["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert "serving.kserve.io/s3-endpoint" in secret["metadata"]["annotations"]
    validate = Path(sys.executable).with_name("kubernetes-validate")
    checked = subprocess.run([str(validate), "--strict", "--quiet", "-k", CURRENT,
                              str(REPO / "k8s/serving/serviceaccount.yaml"), str(REPO / "k8s/serving/s3-secret.template.yaml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    wrong = json.loads(json.dumps(manifest))
    wrong["spec"]["predictor"]["model"]["storageURI"] = wrong["spec"]["predictor"]["model"].pop("storageUri")
    wrong["spec"]["predictor"]["minReplicas"] = "one"
    problems = kserve_problems(wrong)
    assert any("has no field 'storageURI'" in p for p in problems) and any("'one' is not int" in p for p in problems)
