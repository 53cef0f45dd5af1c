"""The cases a new user tried (quantized checkpoints on GPUs that cannot run them natively, bf16
on Turing, gpt-oss off Hopper, W4A16 on an AVX2-only CPU): each gives vLLM's verdict and its
message, per release where vLLM changed its mind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from servecheck.api import Target, check

REAL = next(
    (
        p
        for p in (ROOT.parent / "shared" / "real_configs", Path("/work/shared/real_configs"))
        if p.exists()
    ),
    ROOT / "missing",
)
needs_real = pytest.mark.skipif(not REAL.exists(), reason="shared/real_configs not present")


def gpu(name: str, cap: int, count: int = 1) -> Target:
    return Target(name=name, kind="gpu", capability=cap, count=count)


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


@needs_real
def test_modelopt_fp8_on_a100_fails_before_0_27_and_runs_weight_only_after():
    path = REAL / "nvidia__Llama-3.1-70B-Instruct-FP8"
    old = check(path, vllm_version="0.26.0", target=gpu("A100", 80, 4))
    f = next(f for f in old.findings if f.code == "R011")
    assert "Minimum capability: 89. Current capability: 80." in f.vllm_message
    new = check(path, vllm_version="0.33.0", target=gpu("A100", 80, 4))
    assert new.verdict == "warn" and "R011" not in codes(new) and "H003" in codes(new)


@needs_real
def test_nvfp4_on_a100_is_weight_only_fp4_marlin():
    report = check(REAL / "nvidia__Qwen3-235B-A22B-NVFP4", target=gpu("A100", 80, 8))
    assert report.verdict == "warn"
    texts = {f.vllm_message for f in report.findings if f.code == "H003"}
    assert texts and all("native support for FP4 computation" in t for t in texts)


@needs_real
@pytest.mark.parametrize(
    "name", ["TheBloke__Llama-2-13B-chat-GPTQ", "TheBloke__Wizard-Vicuna-30B-Uncensored-GPTQ"]
)
def test_gptq_configs_name_their_marlin_kernels(name):
    report = check(REAL / name, target=gpu("A100", 80))
    labels = {m.choice.label for m in report.kernels.modules if m.scheme}
    assert labels == {"Marlin (W4A16/W8A16)"} and report.verdict == "ok"


def test_awq_needs_turing(tmp_path):
    cfg = json.loads((FIXTURES / "llama-bf16" / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128,
                                  "zero_point": True, "version": "gemm"}  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    report = check(path, vllm_version="0.11.0", target=gpu("V100", 70))
    f = next(f for f in report.findings if f.code == "R011")
    assert f.vllm_message == (
        "The quantization method awq is not supported for the current GPU. Minimum "
        "capability: 75. Current capability: 70."
    )


def test_bf16_on_t4_falls_back_unless_asked_for():
    auto = check(FIXTURES / "llama-bf16", target=gpu("T4", 75))
    assert auto.verdict == "warn" and "D002" in codes(auto)
    asked = check(FIXTURES / "llama-bf16", target=gpu("T4", 75), dtype="bfloat16")
    f = next(f for f in asked.findings if f.code == "D001")
    assert f.vllm_message.startswith("Bfloat16 is only supported on GPUs with compute capability")


@needs_real
@pytest.mark.parametrize(
    "name, cap, backend",
    [("A100", 80, "TRITON_ATTN"), ("L40S", 89, "TRITON_ATTN"), ("RTX 5090", 120, "FLASHINFER")],
)
def test_gpt_oss_sinks_leave_flash_attention_2(name, cap, backend):
    report = check(REAL / "openai__gpt-oss-20b", target=gpu(name, cap))
    assert report.kernels.attention.backend == backend


def test_w4a16_on_avx2_only_cpu_fails_at_warm_up():
    cpu = Target(name="cpu", kind="cpu")
    report = check(FIXTURES / "llama-W4A16", target=cpu, kernel_env=["avx512=0", "amx=0"])
    f = next(f for f in report.findings if f.code == "H001")
    assert f.vllm_message == "'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
    assert report.verdict == "fail"
