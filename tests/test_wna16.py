"""GPTQ and AWQ checkpoints per module (quant/wna16.py) and their kernels, per release."""

from __future__ import annotations

import json

import pytest

from servecheck.api import check
from test_preflight import AWQ, GPTQ, LLAMA, codes, gpu

MIXTRAL = {
    **LLAMA,
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "torch_dtype": "float16",
}


def config(tmp_path, quant, base=LLAMA, **extra):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**base, "quantization_config": quant, **extra}))
    return path


def kinds(report):
    return {k.kind: k for k in report.kernels.kinds()}


def methods(report):
    return {r.module.kind: r.method for r in report.resolution.resolutions}


@pytest.mark.parametrize(
    ("gpu_name", "version", "method", "kernel"),
    [
        ("T4", "0.33.0", "AutoGPTQLinearMethod", "Marlin"),
        ("A100", "0.33.0", "AutoGPTQLinearMethod", "Marlin"),
        ("H100", "0.33.0", "AutoGPTQLinearMethod", "Machete"),
        ("A100", "0.11.0", "GPTQMarlinLinearMethod", "Marlin"),
        ("V100", "0.11.0", "GPTQLinearMethod", "ExLlama"),
    ],
)
def test_gptq_linear_method_and_kernel(tmp_path, gpu_name, version, method, kernel):
    report = check(
        config(tmp_path, GPTQ, torch_dtype="float16"), vllm_version=version, target=gpu(gpu_name)
    )
    assert methods(report)["attn.qkv_proj"] == method
    assert kernel in kinds(report)["attn.qkv_proj"].kernels_text()
    assert "Q010" not in codes(report)


def test_gptq_below_turing_fails_in_marlin_era(tmp_path):
    report = check(config(tmp_path, GPTQ, torch_dtype="float16"), target=gpu("V100"))
    found = codes(report)["W003"][0]
    assert found.vllm_message == (
        "Marlin does not support weight_bits = uint4b8. Only types = [] are supported (for "
        "group_size = 128, device_capability = 70, zp = False)."
    )
    assert report.verdict == "fail"


def test_gptq_desc_act_removed_in_030(tmp_path):
    path = config(tmp_path, {**GPTQ, "desc_act": True}, torch_dtype="float16")
    assert "W001" in codes(check(path, vllm_version="0.33.0", target=gpu("H100")))
    old = check(path, vllm_version="0.24.0", target=Target_h100(2))
    assert "W001" not in codes(old)
    # act order with the input split across 2 ranks: Machete refuses, Marlin runs it
    assert "Marlin" in kinds(old)["attn.o_proj"].kernels_text()
    # one group per channel makes desc_act a no-op, accepted by 0.33
    path = config(tmp_path, {**GPTQ, "desc_act": True, "group_size": -1}, torch_dtype="float16")
    assert "W001" not in codes(check(path, vllm_version="0.33.0", target=gpu("H100")))


def Target_h100(count):
    return gpu("H100", count)


def test_awq_marlin_and_moe(tmp_path):
    report = check(config(tmp_path, AWQ, base=MIXTRAL), target=gpu("A100"))
    by_kind = methods(report)
    assert by_kind["attn.qkv_proj"] == "AutoAWQMarlinLinearMethod"
    assert by_kind["moe.experts"] == "AutoAWQMoEMethod"
    assert "MARLIN" in kinds(report)["moe.experts"].kernels_text()
    assert report.verdict in ("ok", "warn")
    assert "Q010" not in codes(report) and "H009" not in codes(report)


def test_awq_group_size_without_marlin_uses_triton_awq(tmp_path):
    report = check(
        config(tmp_path, {**AWQ, "group_size": 256}, torch_dtype="float16"), target=gpu("A100")
    )
    assert methods(report)["attn.qkv_proj"] == "AutoAWQLinearMethod"
    assert "awq_gemm" in kinds(report)["attn.qkv_proj"].kernels_text()


def test_modelopt_algos_per_module(tmp_path):
    """ModelOpt FP8 and NVFP4 map to the kernels of the same weight/activation keys."""
    from test_preflight import MODELOPT_FP8

    fp8 = config(tmp_path, MODELOPT_FP8)
    a100 = check(fp8, target=gpu("A100"))
    assert methods(a100)["attn.qkv_proj"] == "ModelOptLinearMethod"
    assert "Marlin FP8" in kinds(a100)["attn.qkv_proj"].kernels_text()
    assert "H003" in codes(a100) and "Q010" not in codes(a100)
    assert "CUTLASS" in kinds(check(fp8, target=gpu("H100")))["attn.qkv_proj"].kernels_text()
    nvfp4 = {
        "quant_method": "modelopt",
        "quant_algo": "NVFP4",
        "group_size": 16,
        "ignore": ["lm_head", "model.layers.1*"],
    }
    report = check(config(tmp_path, nvfp4, base=MIXTRAL), target=gpu("B200"))
    by_name = {r.module.name: r for r in report.resolution.resolutions}
    assert by_name["model.layers.0.block_sparse_moe.experts"].method == "ModelOptNvFp4FusedMoE"
    assert by_name["model.layers.1.self_attn.qkv_proj"].ignored  # 'path*' excludes the subtree
    assert "FLASHINFER" in kinds(report)["moe.experts"].kernels_text()
