"""AMD Quark checkpoints: checkpoints exported by Quark itself (tests/fixtures/make_quark.py)
and quantization configs written by Quark's QConfig, resolved per module and release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from servecheck.api import Target, check

CONFIGS = ROOT / "tests" / "data" / "quark_configs"
A100 = Target(name="A100", kind="gpu", capability=80, count=1)
H100 = Target(name="H100", kind="gpu", capability=90, count=1)
QKV = "model.layers.0.self_attn.qkv_proj"


def _config(tmp_path: Path, qc: dict) -> Path:
    cfg = json.loads((FIXTURES / "llama-bf16" / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "quark", **qc}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def _named(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def test_exported_fp8_runs_on_hopper_and_needs_ada():
    h100 = check(FIXTURES / "llama-quark-fp8", vllm_version="0.33.0", target=H100)
    assert h100.verdict == "ok", [(f.code, f.message) for f in h100.findings]
    res = h100.resolution.by_name()[QKV]
    assert res.scheme == "QuarkW8A8Fp8" and res.method == "QuarkLinearMethod"
    assert res.min_capability == 89
    assert h100.kernels.by_name()[QKV].choice.kernel == "CutlassFP8ScaledMMLinearKernel"
    assert h100.resolution.by_name()["lm_head"].scheme is None  # exclude: ["lm_head"]
    a100 = check(FIXTURES / "llama-quark-fp8", vllm_version="0.33.0", target=A100)
    f = next(f for f in a100.findings if f.code == "R010")
    assert f.vllm_message == (
        "Quantization scheme is not supported for the current GPU. Min capability: 89. "
        "Current capability: 80."
    )
    assert f.exception == "RuntimeError" and a100.verdict == "fail"


def test_exported_mxfp4_takes_the_ocp_mx_scheme_and_mxfp4_kernels():
    report = check(FIXTURES / "llama-quark-mxfp4", vllm_version="0.33.0", target=A100)
    assert report.verdict == "ok", [(f.code, f.message) for f in report.findings]
    assert report.resolution.by_name()[QKV].scheme == "QuarkOCP_MX"
    assert report.kernels.by_name()[QKV].choice.kernel == "MarlinMxFp4LinearKernel"
    # 0.10-0.11.0 named the scheme QuarkW4A4MXFP4 (MXFP4 weights and activations)
    old = check(FIXTURES / "llama-quark-mxfp4", vllm_version="0.10.0", target=A100)
    assert old.resolution.by_name()[QKV].scheme == "QuarkW4A4MXFP4"


@pytest.mark.parametrize(
    ("version", "modelled"), [("0.25.1", False), ("0.26.0", False), ("0.27.0", True)]
)
def test_ocp_mx_reaches_the_kernel_registry_from_0_27(version, modelled):
    # quark_ocp_mx.py is identical 0.21.0-0.25.1 and imports init_mxfp4_linear_kernel from 0.27.0
    report = check(FIXTURES / "llama-quark-mxfp4", vllm_version=version, target=A100)
    kernel = report.kernels.by_name()[QKV].choice.kernel
    assert (kernel == "MarlinMxFp4LinearKernel") is modelled
    assert any(f.code == "H009" for f in report.findings) is not modelled
    assert report.verdict == ("ok" if modelled else "warn")


def test_int8_dynamic_per_token_from_0_20(tmp_path):
    path = _config(tmp_path, _named("w8a8-int8-dynamic"))
    new = check(path, vllm_version="0.33.0", target=A100)
    assert new.resolution.by_name()[QKV].scheme == "QuarkW8A8Int8"
    old = check(path, vllm_version="0.19.1", target=A100)
    f = next(f for f in old.findings if f.code == "F011")
    assert f.vllm_message.startswith("No quark compatible scheme was found.")
    assert f.exception == "NotImplementedError"


def test_fp8_per_channel_dynamic_activations(tmp_path):
    report = check(_config(tmp_path, _named("fp8-per-channel-dynamic")), target=H100)
    res = report.resolution.by_name()[QKV]
    assert res.scheme == "QuarkW8A8Fp8" and res.weights.strategy == "channel"
    assert res.inputs.dynamic and res.inputs.strategy == "token"


def test_uint4_weight_only_needs_the_w4a16_scheme_of_0_31(tmp_path):
    path = _config(tmp_path, _named("uint4-g128-weight-only"))
    assert check(path, vllm_version="0.33.0", target=A100).resolution.by_name()[QKV].scheme == (
        "QuarkW4A16Int4"
    )
    old = check(path, vllm_version="0.30.0", target=A100)
    assert any(f.code == "F011" for f in old.findings) and old.verdict == "fail"


def test_mxfp6_kernels_are_not_modelled_so_never_ok(tmp_path):
    report = check(_config(tmp_path, _named("mxfp6-weight-only")), target=A100)
    assert report.resolution.by_name()[QKV].scheme == "QuarkOCP_MX"
    assert report.verdict == "warn" and any(f.code == "H009" for f in report.findings)


@pytest.mark.parametrize(
    "edit, text",
    [
        (lambda qc: qc.pop("export"), "The export key should be included"),
        (
            lambda qc: qc.update(exclude=["lm_head", "model.layers.0.self_attn.q_proj"]),
            "Found different quantization schemes for the shards of " + QKV,
        ),
        (
            lambda qc: qc.update(
                layer_quant_config={"*k_proj": _named("w8a8-int8-dynamic")["global_quant_config"]}
            ),
            "Found a different quantization configuration for ['q_proj', 'k_proj', 'v_proj']",
        ),
    ],
)
def test_configs_vllm_refuses(tmp_path, edit, text):
    qc = json.loads((FIXTURES / "llama-quark-fp8" / "config.json").read_text())[
        "quantization_config"
    ]
    edit(qc)
    report = check(_config(tmp_path, qc), target=H100)
    f = next(f for f in report.findings if f.code == "F011")
    assert text in f.vllm_message and report.verdict == "fail"
