"""Checkpoints made by each format's own tool (tests/fixtures/make_formats.py): bitsandbytes
through transformers, NVIDIA ModelOpt's export, llm-compressor's GPTQ. Their real configs and
safetensors headers, resolved per module and per GPU."""

from __future__ import annotations

import pytest

from conftest import ROOT
from servecheck.api import check
from test_preflight import codes, gpu

CKPT = ROOT / "tests" / "fixtures" / "checkpoints"


def methods(report):
    return {r.module.kind: r.method for r in report.resolution.resolutions}


def kernels(report):
    return {k.kind: k.kernels_text() for k in report.kernels.kinds()}


def test_bnb_nf4_prequantized():
    report = check(CKPT / "llama-bnb-nf4", vllm_version="0.27.0", target=gpu("A100"))
    assert methods(report)["attn.qkv_proj"] == "BitsAndBytesLinearMethod"
    assert methods(report)["lm_head"] == "UnquantizedLinearMethod"
    assert "matmul_4bit" in kernels(report)["mlp.down_proj"]
    # the quantization state (absmax, quant_map, nested_*) belongs to its layer
    assert not {"K006", "K008", "K009"} & set(codes(report))
    assert report.verdict == "ok"
    tp2 = check(CKPT / "llama-bnb-nf4", vllm_version="0.27.0", target=gpu("A100", 2))
    assert "F003" in codes(tp2) and tp2.verdict == "fail"
    gone = check(CKPT / "llama-bnb-nf4", vllm_version="0.28.0", target=gpu("A100"))
    assert "Q012" in codes(gone)


def test_bnb_int8_prequantized():
    report = check(CKPT / "llama-bnb-int8", vllm_version="0.27.0", target=gpu("L40S"))
    assert "LLM.int8" in kernels(report)["attn.o_proj"]
    assert "F005" in codes(report) and report.verdict == "warn"


def test_bnb_leaves_qwen3_moe_experts_unquantized():
    """transformers' bitsandbytes quantizer does not quantize Qwen3-MoE's experts; vLLM builds
    them with BitsAndBytesMoEMethod and finds no 4-bit weights for them."""
    report = check(CKPT / "qwen3moe-bnb-nf4", vllm_version="0.27.0", target=gpu("A100"))
    assert methods(report)["moe.experts"] == "BitsAndBytesMoEMethod"
    found = codes(report)["K008"]
    assert any("experts" in s for f in found for s in f.subjects)
    assert report.verdict == "fail"


@pytest.mark.parametrize(
    ("name", "gpu_name", "version", "verdict", "kernel"),
    [
        ("llama-modelopt-fp8", "H100", "0.33.0", "ok", "CUTLASS"),
        ("llama-modelopt-fp8", "A100", "0.33.0", "warn", "Marlin"),
        ("llama-modelopt-fp8", "A100", "0.24.0", "fail", None),  # min capability 89 then
        ("llama-modelopt-nvfp4", "B200", "0.33.0", "ok", "NVFP4"),
        ("llama-modelopt-nvfp4", "H100", "0.33.0", "warn", "Marlin"),
    ],
)
def test_modelopt_exports(name, gpu_name, version, verdict, kernel):
    report = check(CKPT / name, vllm_version=version, target=gpu(gpu_name))
    assert report.verdict == verdict
    if kernel is not None:
        assert methods(report)["attn.qkv_proj"] == "ModelOptLinearMethod"
        assert methods(report)["lm_head"] == "UnquantizedLinearMethod"  # exported as excluded
        assert kernel in kernels(report)["attn.qkv_proj"]
        assert not {"K006", "K008", "K009", "Q010", "H009"} & set(codes(report))


def test_llmcompressor_gptq():
    report = check(CKPT / "llama-GPTQ", target=gpu("H100"))
    assert methods(report)["attn.qkv_proj"] == "CompressedTensorsLinearMethod"
    assert "Machete" in kernels(report)["attn.qkv_proj"]
    assert report.verdict == "ok"
