"""vLLM's method and dtype checks before any module is built (quant/preflight.py, methods.py).

Configs are written here (config-only inputs); the expected messages are vLLM's own text from
config/model.py, config/vllm.py and platforms/cuda.py of each release named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servecheck.api import check
from servecheck.core import Target
from servecheck.hardware.gpus import find_gpu
from servecheck.quant.methods import Platform, detect_method, method_row
from servecheck.quant.preflight import resolve_dtype
from servecheck.versions import resolve_version

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}
MODELOPT_FP8 = {
    "quant_method": "modelopt",
    "producer": {"name": "modelopt"},
    "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": []},
}


def write(tmp_path: Path, quant: dict | None = None, **extra) -> Path:
    cfg = {**LLAMA, **extra}
    if quant is not None:
        cfg["quantization_config"] = quant
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def gpu(name: str, count: int = 1) -> Target:
    row = find_gpu(name)
    return Target(row.name, "gpu", row.capability, row.total_memory_bytes, count)


def codes(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f)
    return out


def test_modelopt_fp8_min_capability_is_per_release(tmp_path):
    path = write(tmp_path, MODELOPT_FP8)
    old = codes(check(path, vllm_version="0.24.0", target=gpu("A100")))
    assert old["R011"][0].vllm_message == (
        "The quantization method modelopt is not supported for the current GPU. Minimum "
        "capability: 89. Current capability: 80."
    )
    assert old["R011"][0].exception == "ValueError"
    # 0.27 lowered ModelOptFp8Config.get_min_capability to 80 (FP8 runs on Marlin there).
    assert "R011" not in codes(check(path, vllm_version="0.33.0", target=gpu("A100")))
    assert method_row("modelopt", "0.26.0").min_capability == 89
    assert method_row("modelopt", "0.27.0").min_capability == 80


def test_awq_needs_turing(tmp_path):
    path = write(tmp_path, AWQ, torch_dtype="float16")
    found = codes(check(path, vllm_version="0.33.0", target=gpu("V100")))
    assert "Minimum capability: 75. Current capability: 70." in found["R011"][0].vllm_message


def test_bfloat16_below_sm80(tmp_path):
    path = write(tmp_path)
    auto = codes(check(path, vllm_version="0.33.0", target=gpu("T4")))
    assert "D001" not in auto
    assert "Falling back to torch.float16" in auto["D002"][0].vllm_message
    explicit = codes(check(path, vllm_version="0.33.0", target=gpu("T4"), dtype="bfloat16"))
    assert explicit["D001"][0].vllm_message.startswith(
        "Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your "
    )
    assert "--dtype=half" in explicit["D001"][0].vllm_message
    assert "D001" not in codes(check(path, target=gpu("T4"), dtype="half"))
    assert "D002" not in codes(check(path, target=gpu("A100")))


def test_float16_refused_for_gemma2():
    version = resolve_version("0.33.0")
    plat = Platform("cuda", 80)
    dtype, found = resolve_dtype("bfloat16", "float16", "gemma2", plat, "A100", version)
    assert dtype == "float16"
    assert "does not support float16" in (found[0].vllm_message or "")
    # dtype auto on a T4 never picks float16 for gemma2: it keeps float32
    dtype, found = resolve_dtype("bfloat16", None, "gemma2", Platform("cuda", 75), "T4", version)
    assert dtype == "float32" and found[0].code == "D002"


def test_method_removed_from_release(tmp_path):
    path = write(tmp_path, {"quant_method": "bitsandbytes", "load_in_4bit": True})
    found = codes(check(path, vllm_version="0.33.0", target=gpu("A100")))
    assert found["Q012"][0].vllm_message.startswith("Unknown quantization method: bitsandbytes.")
    assert "0.28.0" in found["Q012"][0].message
    assert "Q012" not in codes(check(path, vllm_version="0.24.0", target=gpu("A100")))


def test_quantization_flag_mismatch(tmp_path):
    path = write(tmp_path, GPTQ, torch_dtype="float16")
    found = codes(check(path, vllm_version="0.33.0", target=gpu("A100"), quantization="fp8"))
    assert found["Q013"][0].vllm_message == (
        "Quantization method specified in the model config (gptq) does not match the "
        "quantization method specified in the `quantization` argument (fp8)."
    )


@pytest.mark.parametrize(
    ("version", "user", "cap", "expected"),
    [
        ("0.11.0", None, 80, "gptq_marlin"),  # GPTQMarlinConfig claims marlin-compatible GPTQ
        ("0.11.0", "gptq", 80, "gptq"),  # an explicit gptq keeps the exllama method
        ("0.11.0", None, 70, "gptq"),  # no Marlin types below sm_75
        ("0.33.0", None, 70, "auto_gptq"),  # AutoGPTQConfig claims every GPTQ checkpoint
        ("0.33.0", "gptq", 90, "auto_gptq"),
    ],
)
def test_gptq_override_walk(version, user, cap, expected):
    det = detect_method(GPTQ, "gptq", user, "llama", Platform("cuda", cap), version)
    assert det.method == expected


def test_awq_on_cpu_is_not_claimed_by_auto_awq():
    det = detect_method(AWQ, "awq", None, "llama", Platform("cpu", None), "0.33.0")
    assert det.method == "awq"
    det = detect_method(AWQ, "awq", None, "llama", Platform("cpu", None), "0.20.0")
    assert det.method == "cpu_awq"


def test_awq_fp16_only_before_024(tmp_path):
    path = write(tmp_path, AWQ)  # a bfloat16 config; --quantization awq keeps the AWQ kernel
    found = codes(check(path, vllm_version="0.11.0", target=gpu("A100"), quantization="awq"))
    assert found["Q015"][0].vllm_message == (
        "torch.bfloat16 is not supported for quantization method awq. Supported dtypes: "
        "[torch.float16]"
    )
    # without the flag AWQMarlinConfig claims it, and Marlin runs bfloat16
    assert "Q015" not in codes(check(path, vllm_version="0.11.0", target=gpu("A100")))


def test_unmodelled_method_is_never_ok(tmp_path):
    path = write(tmp_path, {"quant_method": "torchao", "quant_type": {}})
    report = check(path, vllm_version="0.33.0", target=gpu("H100"))
    assert report.verdict != "ok"
    assert "Q010" in codes(report)
