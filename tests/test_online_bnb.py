"""Quantization applied while loading (--quantization fp8 and the online shorthands) and
bitsandbytes (pre-quantized and in flight), per module and per release.

Configs are written here (config-only inputs); the expected classes and messages are vLLM's
own, from fp8.py, quantization/online/*.py, bitsandbytes.py and bitsandbytes_loader.py of each
release named.
"""

from __future__ import annotations

import json

import pytest

from servecheck.api import check
from servecheck.plan.weights import full_bytes
from servecheck.quant.online import online_plan
from test_preflight import LLAMA, codes, gpu

QWEN3_MOE = {
    **LLAMA,
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 768,
    "head_dim": 128,
}
BNB4 = {
    "quant_method": "bitsandbytes",
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": True,
    "llm_int8_skip_modules": ["o_proj"],
}
BNB8 = {"quant_method": "bitsandbytes", "load_in_8bit": True}


def write(tmp_path, base=LLAMA, quant=None):
    cfg = dict(base)
    if quant is not None:
        cfg["quantization_config"] = quant
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def methods(report):
    return {r.module.kind: r.method for r in report.resolution.resolutions}


def weight_bytes(report, kind):
    """All of a module kind's bytes as vLLM allocates them (plan/weights.py)."""
    res = report.resolution.by_name()
    return sum(
        full_bytes(m, res[m.name], report.module_bytes.get(m.name), report.model, None)
        for m in report.inventory.modules
        if m.kind == kind
    )


def kernels(report):
    return {k.kind: k for k in report.kernels.kinds()}


@pytest.mark.parametrize(
    ("version", "linear", "moe", "redirect"),
    [
        ("0.11.0", "Fp8LinearMethod", "Fp8MoEMethod", ""),
        ("0.13.0", "Fp8LinearMethod", "Fp8OnlineMoEMethod", ""),
        ("0.20.0", "Fp8OnlineLinearMethod", "Fp8OnlineMoEMethod", ""),
        ("0.24.0", "Fp8PerTensorOnlineLinearMethod", "Fp8OnlineMoEMethod", ""),
        ("0.30.0", "Fp8PerTensorOnlineLinearMethod", "Fp8PerTensorOnlineMoEMethod", ""),
        (
            "0.33.0",
            "Fp8PerTensorOnlineLinearMethod",
            "Fp8PerTensorOnlineMoEMethod",
            "fp8_per_tensor",
        ),
    ],
)
def test_fp8_online_classes_per_release(tmp_path, version, linear, moe, redirect):
    plan = online_plan("fp8", version)
    assert plan is not None and (plan.linear, plan.moe, plan.redirect) == (linear, moe, redirect)
    report = check(
        write(tmp_path, QWEN3_MOE), vllm_version=version, target=gpu("H100"), quantization="fp8"
    )
    got = methods(report)
    assert got["attn.qkv_proj"] == linear and got["moe.experts"] == moe
    assert got["lm_head"] == "UnquantizedLinearMethod"
    found = codes(report)
    assert "F001" in found and "Q010" not in found
    assert ("F002" in found) == bool(redirect)
    if redirect:
        assert found["F002"][0].vllm_message == (
            "--quantization fp8 is deprecated for online quantization; use --quantization "
            "fp8_per_tensor instead."
        )


def test_fp8_online_halves_the_weights_and_reads_16_bit_tensors(tmp_path):
    path = write(tmp_path)
    plain = check(path, target=gpu("H100"))
    online = check(path, target=gpu("H100"), quantization="fp8")
    for kind in ("attn.qkv_proj", "mlp.down_proj"):
        half = weight_bytes(plain, kind) / 2
        assert half <= weight_bytes(online, kind) < half * 1.01
    # ParallelLMHead is not a LinearBase: it stays 16-bit
    assert weight_bytes(online, "lm_head") == weight_bytes(plain, "lm_head")
    # the checkpoint keeps 16-bit tensors: nothing is reported missing or mistyped
    assert not {"K001", "K002", "K003"} & set(codes(online))


@pytest.mark.parametrize(
    ("gpu_name", "version", "linear_kernel", "moe_backend"),
    [
        ("A100", "0.24.0", "Marlin", "MARLIN"),  # below sm_89: weight-only
        ("L40S", "0.33.0", "CUTLASS", "TRITON"),
        ("H100", "0.33.0", "CUTLASS", "TRITON"),
    ],
)
def test_fp8_online_kernels(tmp_path, gpu_name, version, linear_kernel, moe_backend):
    report = check(
        write(tmp_path, QWEN3_MOE),
        vllm_version=version,
        target=gpu(gpu_name),
        quantization="fp8",
    )
    k = kernels(report)
    assert linear_kernel in k["attn.qkv_proj"].kernels_text()
    assert moe_backend in k["moe.experts"].kernels_text()


def test_fp8_per_block_and_per_channel_shorthands(tmp_path):
    path = write(tmp_path, QWEN3_MOE)
    block = check(path, target=gpu("H100"), quantization="fp8_per_block")
    assert methods(block)["moe.experts"] == "Fp8PerBlockOnlineMoEMethod"
    assert "DeepGEMM" in kernels(block)["attn.qkv_proj"].kernels_text()
    chan = check(path, target=gpu("H100"), quantization="fp8_per_channel")
    assert methods(chan)["attn.o_proj"] == "Fp8PtpcOnlineLinearMethod"
    assert "VLLM_CUTLASS" in kernels(chan)["moe.experts"].kernels_text()
    # fp8_per_channel appeared in 0.24
    old = check(path, vllm_version="0.20.0", target=gpu("H100"), quantization="fp8_per_channel")
    assert "Q012" in codes(old)


def test_fp8_online_below_the_method_minimum(tmp_path):
    # Fp8Config needs sm_80 up to 0.13 (75 after): a T4 is refused before anything loads
    report = check(write(tmp_path), vllm_version="0.11.0", target=gpu("T4"), quantization="fp8")
    assert "R011" in codes(report) and report.verdict == "fail"


def test_bnb_prequantized_4bit(tmp_path):
    report = check(write(tmp_path, quant=BNB4), vllm_version="0.27.0", target=gpu("A100"))
    got = methods(report)
    assert got["attn.qkv_proj"] == "BitsAndBytesLinearMethod"
    assert got["attn.o_proj"] == "UnquantizedLinearMethod"  # llm_int8_skip_modules
    assert "matmul_4bit" in kernels(report)["mlp.down_proj"].kernels_text()
    found = codes(report)
    assert "Q010" not in found and "H009" not in found and "F001" not in found
    assert found["F006"][0].vllm_message.startswith("Please install bitsandbytes>=0.48.1")
    assert report.verdict != "fail"


def test_bnb_prequantized_with_tensor_parallel_fails(tmp_path):
    report = check(write(tmp_path, quant=BNB4), vllm_version="0.27.0", target=gpu("A100", 2))
    found = codes(report)["F003"][0]
    assert found.vllm_message == (
        "Prequant BitsAndBytes models with tensor parallelism is not supported. Please try "
        "with pipeline parallelism."
    )
    assert report.verdict == "fail"


def test_bnb_8bit_moe_and_eager(tmp_path):
    report = check(write(tmp_path, QWEN3_MOE, BNB8), vllm_version="0.27.0", target=gpu("A100"))
    found = codes(report)
    assert found["F004"][0].exception == "NotImplementedError"
    assert "F005" in found and report.verdict == "fail"
    dense = check(write(tmp_path, quant=BNB8), vllm_version="0.27.0", target=gpu("A100"))
    assert "LLM.int8" in kernels(dense)["attn.qkv_proj"].kernels_text()


def test_bnb_in_flight_quarter_bytes_and_tp(tmp_path):
    path = write(tmp_path, QWEN3_MOE)
    report = check(path, vllm_version="0.27.0", target=gpu("A100", 2), quantization="bitsandbytes")
    got = methods(report)
    assert got["moe.experts"] == "BitsAndBytesMoEMethod"
    found = codes(report)
    assert "F001" in found and "F003" not in found  # in flight, TP is fine
    plain = check(path, vllm_version="0.27.0", target=gpu("A100", 2))
    quarter = weight_bytes(plain, "moe.experts") / 4
    assert quarter < weight_bytes(report, "moe.experts") < quarter * 1.1


def test_bnb_removed_in_0_28(tmp_path):
    report = check(write(tmp_path, quant=BNB4), vllm_version="0.28.0", target=gpu("A100"))
    assert "removed it in 0.28.0" in codes(report)["Q012"][0].message
