"""Kernel and backend selection per layer (servecheck.hardware), against vLLM 0.33's rules.

Every expectation below was traced by hand through vLLM 0.33's source (the file and lines are
in knowledge/kernels.toml next to each kernel); the tests run the real selection code on the
shipped example and the committed tiny checkpoints.
"""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, FIXTURES
from servecheck.api import Target, check
from servecheck.hardware.conditions import cap_matches
from servecheck.hardware.env import resolve_env
from servecheck.hardware.gpus import find_gpu
from servecheck.versions import Release

GLM_AIR = EXAMPLES / "glm-4.5-air-derestricted-fp8"


def gpu_target(name: str, count: int = 1) -> Target:
    g = find_gpu(name)
    return Target(name=g.name, kind="gpu", capability=g.capability, count=count)


def kinds(report) -> dict:
    return {k.kind: k for k in report.kernels.kinds()}


def run(path, gpu: str, *env: str, version: str | None = None):
    return check(path, target=gpu_target(gpu), kernel_env=env, vllm_version=version)


# --- the "Done when": GLM-4.5-Air FP8 (W8A8 FP8 channel / dynamic token) ------------


@pytest.mark.parametrize(
    ("gpu", "sm", "linear", "moe"),
    [
        # sm_120: vLLM CUTLASS grouped FP8 MoE is < sm_110 only (_custom_ops.py:864-871)
        ("RTX PRO 6000 Blackwell", 120, "CutlassFP8ScaledMMLinearKernel", "TRITON"),
        ("H100", 90, "CutlassFP8ScaledMMLinearKernel", "VLLM_CUTLASS"),
        ("L40S", 89, "CutlassFP8ScaledMMLinearKernel", "TRITON"),
        # below sm_89 compressed-tensors resolves W8A16Fp8: Marlin, weight-only
        ("A100", 80, "MarlinFP8ScaledMMLinearKernel", "MARLIN"),
    ],
)
def test_glm_air_fp8_per_gpu(gpu, sm, linear, moe):
    report = run(GLM_AIR, gpu)
    k = report.kernels
    assert k.device.capability == sm
    by_kind = kinds(report)
    qkv = by_kind["attn.qkv_proj"]
    expected_scheme = "W8A8Fp8" if sm >= 89 else "W8A16Fp8"
    assert qkv.schemes == {expected_scheme: 47}
    assert qkv.capability_ok is True
    modules = k.by_name()
    assert modules["model.layers.0.self_attn.qkv_proj"].choice.kernel == linear
    experts = modules["model.layers.1.mlp.experts"].choice
    assert experts.kernel == moe
    assert by_kind["moe.experts"].kernels_text().startswith(moe)
    # M/P findings are the memory plan (1 GPU does not hold GLM-4.5-Air; tests/test_plan.py)
    codes = {
        f.code for f in report.findings if f.severity.value != "info" and f.code[0] not in "MP"
    }
    if sm >= 89:
        assert codes == set()
    else:
        assert codes == {"H003"}
        h003 = next(f for f in report.findings if f.code == "H003")
        assert "Weight-only FP8 compression will be used" in h003.vllm_message


def test_glm_air_differs_where_vllm_differs():
    moe = {
        g: run(GLM_AIR, g).kernels.by_name()["model.layers.1.mlp.experts"].choice.kernel
        for g in ("RTX PRO 6000", "H100", "L40S", "A100")
    }
    assert len(set(moe.values())) == 3  # TRITON twice (sm_120, sm_89), VLLM_CUTLASS, MARLIN
    # the deciding reason on sm_120 is the device check of vLLM CUTLASS grouped MoE
    steps = run(GLM_AIR, "RTX PRO 6000").kernels.by_name()["model.layers.1.mlp.experts"].choice
    rejected = {s.candidate: s.reason for s in steps.steps if not s.ok}
    assert "VLLM_CUTLASS" in rejected and "current device" in rejected["VLLM_CUTLASS"]


def test_capability_table_in_markdown_and_json():
    from servecheck.render.check.json_out import to_dict
    from servecheck.render.check.markdown import render_markdown

    report = run(GLM_AIR, "RTX PRO 6000 Blackwell")
    md = render_markdown(report)
    assert "## Kernels on RTX PRO 6000 Blackwell Workstation Edition (sm_120)" in md
    # MoE methods have no capability check of their own: the backend decides
    assert "| `moe.experts` | W8A8Fp8 | – | – | TRITON | ok |" in md
    data = to_dict(report)
    assert data["hardware"]["sm"] == "sm_120"
    assert data["hardware"]["attention"]["backend"] == "FLASH_ATTN"
    mods = {m["name"]: m for m in data["modules"]}
    assert mods["model.layers.1.mlp.experts"]["moe_backend"]["kernel"] == "TRITON"
    assert mods["model.layers.0.self_attn.o_proj"]["kernel"]["kernel"] == (
        "CutlassFP8ScaledMMLinearKernel"
    )
    assert "kernel" not in mods["model.layers.1.mlp.experts"]
    # existing fields stay
    assert {"scheme", "min_capability", "method"} <= set(mods["model.layers.1.mlp.experts"])


def test_no_target_no_hardware():
    report = check(GLM_AIR)
    assert report.kernels is None
    from servecheck.render.check.json_out import to_dict

    assert to_dict(report)["hardware"] is None


# --- block FP8 ---------------------------------------------------------------------------------

BLOCK = FIXTURES / "glm4moe-FP8_BLOCK"


def test_block_fp8_sm120_with_deep_gemm():
    k = run(BLOCK, "RTX PRO 6000").kernels.by_name()
    # vLLM 0.33 platforms/cuda.py:691-697: DeepGEMM on sm_90, 10x and 12x; the wheel vendors it
    assert k["model.layers.0.self_attn.qkv_proj"].choice.kernel == "DeepGemmFp8BlockScaledMMKernel"
    assert k["model.layers.1.mlp.experts"].choice.kernel == "DEEPGEMM"


def test_block_fp8_sm120_without_deep_gemm():
    k = run(BLOCK, "RTX PRO 6000", "deep_gemm=0").kernels.by_name()
    # csrc cutlass_scaled_mm_supports_block_fp8: cap >= 100 with CUDA >= 12.8 (sm120 path)
    assert k["model.layers.0.self_attn.qkv_proj"].choice.kernel == "CutlassFp8BlockScaledMMKernel"
    assert k["model.layers.1.mlp.experts"].choice.kernel == "TRITON"
    same = run(BLOCK, "RTX PRO 6000", "VLLM_USE_DEEP_GEMM=0").kernels.by_name()
    assert same["model.layers.1.mlp.experts"].choice.kernel == "TRITON"


def test_block_fp8_hopper_prefers_triton_moe_and_flashinfer_deepgemm_linear():
    k = run(BLOCK, "H100").kernels.by_name()
    assert k["model.layers.0.self_attn.qkv_proj"].choice.kernel == (
        "FlashInferFp8DeepGEMMDynamicBlockScaledKernel"
    )
    # oracle/fp8.py:122-133: Triton moved to the front for block FP8 on sm_90 (TP)
    assert k["model.layers.1.mlp.experts"].choice.kernel == "TRITON"


def test_block_fp8_on_ada_runs_weight_only_marlin_in_0_33_but_triton_in_0_24():
    new = run(BLOCK, "L40S")
    assert new.kernels.by_name()["model.layers.0.self_attn.qkv_proj"].choice.kernel == (
        "MarlinFP8ScaledMMLinearKernel"
    )
    assert "H003" in {f.code for f in new.findings}
    old = run(BLOCK, "L40S", version="0.24.0")
    assert old.kernels.by_name()["model.layers.0.self_attn.qkv_proj"].choice.kernel == (
        "TritonFp8BlockScaledMMKernel"
    )
    assert "H003" not in {f.code for f in old.findings}


def test_forced_deep_gemm_on_ada_is_an_error():
    report = run(BLOCK, "L40S", "VLLM_MOE_USE_DEEP_GEMM=1")
    f = next(f for f in report.findings if f.code == "H007")
    assert f.vllm_message.startswith("FP8 MoE backend DEEPGEMM does not support the deployment")
    assert report.verdict == "fail"


def test_deep_gemm_devices_keyed_by_version():
    # 0.11 utils/deep_gemm.py:23-30: cap 90 or 100 exactly; 0.33 adds the 10x and 12x families
    assert resolve_env(Release.parse("0.11.0")).has("deep_gemm") is False
    k11 = run(BLOCK, "RTX PRO 6000", "deep_gemm=1", version="0.11.0").kernels.by_name()
    assert k11["model.layers.0.self_attn.qkv_proj"].choice.kernel != (
        "DeepGemmFp8BlockScaledMMKernel"
    )
    k33 = run(BLOCK, "RTX PRO 6000", version="0.33.0").kernels.by_name()
    assert k33["model.layers.0.self_attn.qkv_proj"].choice.kernel == (
        "DeepGemmFp8BlockScaledMMKernel"
    )


# --- NVFP4 -------------------------------------------------------------------------------------

NVFP4 = FIXTURES / "glm4moe-NVFP4"


@pytest.mark.parametrize(
    ("gpu", "env", "linear", "moe"),
    [
        ("B200", (), "FlashInferCuteDslNvFp4LinearKernel", "FLASHINFER_TRTLLM"),
        ("RTX PRO 6000", (), "FlashInferCutlassNvFp4LinearKernel", "FLASHINFER_CUTLASS"),
        # without FlashInfer: vLLM's own CUTLASS FP4 (families 10x/11x/12x for MoE)
        ("RTX PRO 6000", ("flashinfer=0",), "CutlassNvFp4LinearKernel", "VLLM_CUTLASS"),
        ("B200", ("flashinfer=0",), "CutlassNvFp4LinearKernel", "VLLM_CUTLASS"),
    ],
)
def test_nvfp4_sm100_vs_sm120(gpu, env, linear, moe):
    report = run(NVFP4, gpu, *env)
    k = report.kernels.by_name()
    assert k["model.layers.0.self_attn.qkv_proj"].choice.kernel == linear
    assert k["model.layers.1.mlp.experts"].choice.kernel == moe
    assert not any(f.code.startswith("H") for f in report.findings)


def test_nvfp4_below_blackwell_is_weight_only_marlin():
    report = run(NVFP4, "H100")
    k = report.kernels.by_name()
    assert k["model.layers.0.self_attn.qkv_proj"].choice.kernel == "MarlinNvFp4LinearKernel"
    assert k["model.layers.1.mlp.experts"].choice.kernel == "MARLIN"
    h003 = [f for f in report.findings if f.code == "H003"]
    assert h003 and any("Weight-only FP4" in (f.vllm_message or "") for f in h003)


def test_nvfp4a16_forces_marlin_on_sm120_but_cutedsl_on_sm100():
    fx = FIXTURES / "glm4moe-NVFP4A16"
    k120 = run(fx, "RTX PRO 6000").kernels.by_name()["model.layers.0.self_attn.qkv_proj"]
    k100 = run(fx, "B200").kernels.by_name()["model.layers.0.self_attn.qkv_proj"]
    assert k120.choice.kernel == "MarlinNvFp4LinearKernel"
    assert k100.choice.kernel == "FlashInferCuteDslNvFp4W4A16LinearKernel"
    # NVFP4A16 asks for weight-only: no degraded-path warning
    assert not k120.degraded


# --- attention -----------------------------------------------------------------------------------


def _mla_config(tmp_path, **extra):
    import json

    cfg = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "intermediate_size": 2048,
        "moe_intermediate_size": 512,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "q_lora_rank": 384,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "vocab_size": 1000,
        "n_group": 1,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    ("gpu", "backend"),
    [
        ("RTX PRO 6000", "TRITON_MLA"),  # platforms/cuda.py:134-138: sm_12x has no FlashMLA
        ("DGX Spark", "TRITON_MLA"),
        ("H100", "FLASH_ATTN_MLA"),
        ("B200", "FLASHINFER_MLA"),
        ("A100", "TRITON_MLA"),
    ],
)
def test_mla_backend_per_architecture(tmp_path, gpu, backend):
    report = run(_mla_config(tmp_path), gpu)
    att = report.kernels.attention
    assert att.mla and att.head_size == 576
    assert att.backend == backend


def test_mla_sparse_on_sm120(tmp_path):
    report = run(_mla_config(tmp_path, index_topk=2048), "RTX PRO 6000")
    assert report.kernels.attention.backend == "FLASHINFER_MLA_SPARSE_SM120"
    assert report.kernels.attention.sparse


def test_fp8_kv_cache_per_architecture():
    def fp8(gpu: str) -> str:
        return run(GLM_AIR, gpu).kernels.attention_fp8.backend

    # FlashAttention takes an FP8 KV cache only as FA3 on sm_90 / FA4 on sm_100
    assert fp8("H100") == "FLASH_ATTN"
    assert fp8("B200") == "FLASHINFER"
    assert fp8("RTX PRO 6000") == "FLASHINFER"
    assert fp8("RTX PRO 6000") != run(GLM_AIR, "RTX PRO 6000").kernels.attention.backend
    assert run(GLM_AIR, "RTX PRO 6000", "flashinfer=0").kernels.attention_fp8.backend == (
        "TRITON_ATTN"
    )
    assert run(GLM_AIR, "T4").kernels.attention.backend == "TRITON_ATTN"


# --- environment, CUDA builds, errors ----------------------------------------------------------


def test_cuda_build_too_old_for_sm120_and_too_new_for_v100():
    report = run(GLM_AIR, "RTX PRO 6000", "cuda=12.6")
    f = next(f for f in report.findings if f.code == "H005")
    assert "12.8" in f.message and report.verdict == "fail"
    v100 = run(FIXTURES / "llama-bf16", "V100")  # 0.33 wheel is CUDA 13: no sm_70
    assert "H005" in {f.code for f in v100.findings}
    assert "H005" not in {
        f.code for f in run(FIXTURES / "llama-bf16", "V100", "cuda=12.8").findings
    }


def test_kernel_env_errors():
    from servecheck.errors import InputError

    with pytest.raises(InputError):
        resolve_env(Release.parse("0.33.0"), ["nonsense=1"])
    with pytest.raises(InputError):
        resolve_env(Release.parse("0.33.0"), ["cuda"])
    env = resolve_env(Release.parse("0.33.0"), ["deep_gemm=0,VLLM_USE_DEEP_GEMM=0", "cuda=12.9"])
    assert not env.has("deep_gemm") and env.is_set("VLLM_USE_DEEP_GEMM") and env.cuda == "12.9"


def test_no_linear_kernel_error_quotes_vllm():
    # WNA16 int4 with group 256, bf16, on an A100: Marlin takes groups -1/32/64/128 only,
    # Machete and CUTLASS W4A8 need sm_90, Conch is not installed, Exllama needs fp16.
    # 0.33 still has Triton W4A16 (groups up to 256); 0.11 has no Triton kernel: no kernel.
    from dataclasses import replace

    from servecheck.hardware.conditions import Device
    from servecheck.hardware.kernels import Context
    from servecheck.hardware.linear_kernels import linear_kernel

    report = check(FIXTURES / "llama-W4A16")
    res = next(r for r in report.resolution.resolutions if r.scheme == "WNA16")
    res = replace(res, weights=replace(res.weights, group_size=256))
    a100 = Device("cuda", 80)
    ctx33 = Context(
        a100, Release.parse("0.33.0"), resolve_env(Release.parse("0.33.0")), dtype="bfloat16"
    )
    ctx11 = Context(
        a100, Release.parse("0.11.0"), resolve_env(Release.parse("0.11.0")), dtype="bfloat16"
    )
    assert linear_kernel(res, ctx33).kernel == "TritonW4A16LinearKernel"
    choice = linear_kernel(res, ctx11)
    assert choice.error == "Failed to find a kernel that can implement the WNA16 linear layer."
    rejected = {s.candidate: s.reason for s in choice.steps}
    assert "Group size (256) not supported" in rejected["MarlinLinearKernel"]
    assert "float16" in rejected["ExllamaLinearKernel"]
    # fp16 models can use Exllama there
    assert linear_kernel(res, replace(ctx11, dtype="float16")).kernel == "ExllamaLinearKernel"


def test_capability_expressions():
    assert cap_matches("==90 | family:100 | family:120", 121)
    assert not cap_matches("==90 | family:100 | family:120", 110)
    assert cap_matches(">=90 & <110", 103) and not cap_matches(">=90 & <110", 120)
    assert not cap_matches("none", 90) and not cap_matches(">=0", None)
