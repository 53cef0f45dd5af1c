"""MXFP8 (ModelOpt, compressed-tensors, online) and the W4A8 compressed-tensors schemes: the
kernel or MoE backend vLLM picks per GPU, or what it raises (kernels.toml mxfp8 rows,
hardware/linear_kernels.py, moe_backends.py)."""

from __future__ import annotations

import json

from servecheck.api import check
from test_online_bnb import QWEN3_MOE
from test_preflight import codes, gpu

# ModelOpt's flat form (config.json quantization_config); the hf_quant_config.json form with a
# producer block is refused for MXFP8 by vLLM 0.33's normalisation (test below).
MODELOPT_MXFP8 = {"quant_method": "modelopt", "quant_algo": "MXFP8", "exclude_modules": []}
MODELOPT_MXFP8_PRODUCER = {
    "producer": {"name": "modelopt"},
    "quantization": {"quant_algo": "MXFP8", "kv_cache_quant_algo": None, "exclude_modules": []},
}


def ct(weights: dict, inputs: dict | None, fmt: str) -> dict:
    group = {"targets": ["Linear"], "weights": weights, "input_activations": inputs}
    return {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "config_groups": {"group_0": group},
        "ignore": ["lm_head"],
    }


CT_MXFP8 = ct(
    {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True,
     "scale_dtype": "torch.uint8"},
    {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True,
     "dynamic": True, "scale_dtype": "torch.uint8"},
    "mxfp8-quantized",
)  # fmt: skip
CT_W4A8_INT = ct(
    {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True},
    {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True},
    "int-quantized",
)


def write(tmp_path, quant, base=QWEN3_MOE):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**base, "quantization_config": quant}))
    return path


def kernels(report):
    return {k.kind: k.kernels_text() for k in report.kernels.kinds()}


def test_modelopt_mxfp8_per_gpu(tmp_path):
    path = write(tmp_path, MODELOPT_MXFP8)
    b200 = check(path, target=gpu("B200"))
    k = kernels(b200)
    assert "CuTe-DSL MXFP8" in k["attn.qkv_proj"] and k["moe.experts"].startswith(
        "FLASHINFER_TRTLLM"
    )
    assert "H009" not in codes(b200) and b200.verdict == "ok"
    h100 = check(path, target=gpu("H100"))
    k = kernels(h100)
    assert "Marlin MXFP8" in k["attn.qkv_proj"] and k["moe.experts"].startswith("MARLIN")
    assert "H003" in codes(h100) and h100.verdict == "warn"  # weight-only: degraded, not OK
    rtx = check(path, target=gpu("RTX 5090"))
    assert "CUTLASS MXFP8" in kernels(rtx)["attn.o_proj"]


def test_modelopt_mxfp8_producer_form_is_refused(tmp_path):
    report = check(write(tmp_path, MODELOPT_MXFP8_PRODUCER), target=gpu("B200"))
    assert "Q011" in codes(report) and report.verdict == "fail"


def test_modelopt_mxfp8_needs_ampere_and_bfloat16(tmp_path):
    t4 = check(write(tmp_path, MODELOPT_MXFP8), target=gpu("T4"))
    assert "R011" in codes(t4) and t4.verdict == "fail"
    fp16 = {**QWEN3_MOE, "torch_dtype": "float16"}
    half = check(write(tmp_path, MODELOPT_MXFP8, fp16), target=gpu("H100"))
    assert "Q015" in codes(half)  # ModelOptMxFp8Config supports bfloat16 activations only


def test_ct_mxfp8_kernels(tmp_path):
    report = check(write(tmp_path, CT_MXFP8), target=gpu("B200"))
    methods = {r.module.kind: r.method for r in report.resolution.resolutions}
    assert methods["moe.experts"] == "CompressedTensorsW8A8Mxfp8MoEMethod"
    k = kernels(report)
    assert "MXFP8" in k["attn.qkv_proj"] and k["moe.experts"].startswith("FLASHINFER_TRTLLM")


def test_online_mxfp8(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN3_MOE))
    report = check(path, target=gpu("B200"), quantization="mxfp8")
    methods = {r.module.kind: r.method for r in report.resolution.resolutions}
    assert methods["attn.o_proj"] == "Mxfp8OnlineLinearMethod"
    assert methods["moe.experts"] == "Mxfp8OnlineMoEMethod"
    assert kernels(report)["moe.experts"].startswith("FLASHINFER_TRTLLM")


def test_w4a8_int_is_a_cpu_scheme(tmp_path):
    path = write(tmp_path, CT_W4A8_INT)
    report = check(path, target=gpu("H100"))
    found = codes(report)
    # linear: no CUDA mixed-precision kernel takes signed int4 weights with 16-bit activations
    assert "H001" in found or "H002" in found
    moe = [f for f in report.findings if "only supported on CPU" in (f.vllm_message or "")]
    assert moe and moe[0].exception == "NotImplementedError"
    assert report.verdict == "fail"
    cpu = check(path, target=_cpu())
    assert "4-bit" in kernels(cpu)["attn.qkv_proj"]


def _cpu():
    from servecheck.targets import target_from_option

    return target_from_option("cpu", 1)


FP8_W = {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True}
FP8_A = {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True, "dynamic": True}


def test_fp8_experts_below_sm89_keep_the_w8a8_method(tmp_path):
    """vLLM names experts by the MoE method class: below sm_89 W8A8 FP8 experts are still
    CompressedTensorsW8A8Fp8MoEMethod (run by Marlin), while the linears become W8A16Fp8."""
    report = check(write(tmp_path, ct(FP8_W, FP8_A, "float-quantized")), target=gpu("A100"))
    res = {r.module.kind: r for r in report.resolution.resolutions}
    assert res["moe.experts"].method == "CompressedTensorsW8A8Fp8MoEMethod"
    assert res["moe.experts"].scheme == "W8A8Fp8"
    assert res["attn.qkv_proj"].scheme == "W8A16Fp8"
    assert kernels(report)["moe.experts"].startswith("MARLIN")
    assert report.verdict == "warn"  # weight-only experts (H003), not a capability failure


def test_w4a8_int_experts_are_the_w4a8_int8_method(tmp_path):
    report = check(write(tmp_path, CT_W4A8_INT), target=_cpu())
    res = {r.module.kind: r for r in report.resolution.resolutions}
    assert res["moe.experts"].method == "CompressedTensorsW4A8Int8MoEMethod"
    assert res["moe.experts"].scheme == "W4A8Int8"


def test_equal_groups_over_expert_projections_compare_by_value(tmp_path):
    """Two config groups with equal arguments covering gate/up and down: vLLM's
    get_moe_method compares the scheme dicts by value and quantizes the experts."""
    quant = {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "config_groups": {
            "group_0": {
                "targets": ["re:.*gate_proj$", "re:.*up_proj$", "re:.*qkv_proj$", "re:.*o_proj$"],
                "weights": FP8_W,
                "input_activations": FP8_A,
            },
            "group_1": {
                "targets": ["re:.*down_proj$"],
                "weights": FP8_W,
                "input_activations": FP8_A,
            },
        },
        "ignore": ["lm_head"],
    }
    report = check(write(tmp_path, quant), target=gpu("H100"))
    res = {r.module.kind: r for r in report.resolution.resolutions}
    assert res["moe.experts"].method == "CompressedTensorsW8A8Fp8MoEMethod"
    assert not any(r.error for r in report.resolution.resolutions)
    # different arguments still differ
    quant["config_groups"]["group_1"]["weights"] = {**FP8_W, "strategy": "tensor"}
    quant["config_groups"]["group_1"]["input_activations"] = {**FP8_A, "strategy": "tensor"}
    differs = check(write(tmp_path, quant), target=gpu("H100"))
    assert any(r.module.kind == "moe.experts" and r.error for r in differs.resolution.resolutions)
