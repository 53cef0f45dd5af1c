"""MXFP4 fused-MoE backends per release and GPU (hardware/moe_backends.py; vLLM 0.24/0.33
fused_moe/oracle/mxfp4.py, compressed_tensors_moe_w4a4_mxfp4.py, 0.11 quantization/mxfp4.py).
The sm_90 choices of 0.24 are also held to measured runs in test_gpu_truth.py."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, ROOT
from servecheck.api import Target, check
from servecheck.hardware.gpus import find_gpu

GPT_OSS = ROOT / "benchmarks" / "gpu_truth" / "configs" / "gpt-oss-20b"
CT_MXFP4 = FIXTURES / "qwen3moe-MXFP4"


def experts_choice(path, gpu: str, version: str, *env: str):
    g = find_gpu(gpu)
    target = Target(name=g.name, kind="gpu", capability=g.capability, count=1)
    report = check(path, vllm_version=version, target=target, kernel_env=env)
    choices = [m.choice for m in report.kernels.modules if m.kind == "moe.experts"]
    assert choices
    return choices[0]


@pytest.mark.parametrize(
    ("gpu", "version", "backend", "experts"),
    [
        # the method picks CUTLASS where ops.mxfp4_experts_quant_supported (sm_100-119)
        ("B200", "0.24.0", "CUTLASS_MXFP4_MXFP4", "CutlassExpertsMxfp4"),
        ("B200", "0.33.0", "CUTLASS_MXFP4_MXFP4", "CutlassExpertsMxfp4"),
        ("H100", "0.24.0", "MARLIN", "MarlinExperts"),
        ("RTX PRO 6000 Blackwell", "0.33.0", "MARLIN", "MarlinExperts"),
    ],
)
def test_compressed_tensors_mxfp4_experts(gpu: str, version: str, backend: str, experts: str):
    c = experts_choice(CT_MXFP4, gpu, version)
    assert (c.kernel, c.experts) == (backend, experts)
    assert c.weight_only is (experts == "MarlinExperts")


@pytest.mark.parametrize(
    ("gpu", "version", "env", "backend", "experts"),
    [
        ("H100", "0.24.0", (), "TRITON", "OAITritonMxfp4ExpertsMonolithic"),
        ("B200", "0.33.0", (), "FLASHINFER_TRTLLM_MXFP4_BF16", "TrtLlmMxfp4ExpertsMonolithic"),
        ("B200", "0.33.0", ("flashinfer=0",), "TRITON", "OAITritonMxfp4ExpertsMonolithic"),
        # 0.33 moves the OAI Triton kernels behind Marlin on sm_12x
        ("RTX PRO 6000 Blackwell", "0.33.0", ("flashinfer=0",), "MARLIN", "MarlinExperts"),
        ("A100", "0.24.0", (), "MARLIN", "MarlinExperts"),
        # 0.11 get_mxfp4_backend: Triton only with the triton_kernels package installed
        ("H100", "0.11.0", (), "MARLIN", "MarlinExperts"),
        ("H100", "0.11.0", ("triton_kernels=1",), "TRITON", "OAITritonExperts"),
    ],
)
def test_gpt_oss_mxfp4_experts(gpu, version, env, backend, experts):
    c = experts_choice(GPT_OSS, gpu, version, *env)
    assert (c.kernel, c.experts) == (backend, experts)
    assert c.warning is None  # MarlinExperts' FP8 warning is not what the mxfp4 methods log


def test_other_mxfp4_checkpoints_walk_the_deepseek_v4_list(tmp_path):
    """Mxfp4MoEMethod (quant_method mxfp4, not gpt-oss): select_deepseek_v4_mxfp4_moe_backend,
    each backend with its own activation key (TRT-LLM MXFP8, DeepGEMM FP8 x FP4, Marlin)."""
    config = json.loads((CT_MXFP4 / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    path = tmp_path / "config.json"
    sm100 = experts_choice(path, "B200", "0.24.0")
    assert (sm100.kernel, sm100.experts) == (
        "FLASHINFER_TRTLLM_MXFP4_MXFP8",
        "TrtLlmMxfp4ExpertsMonolithic",
    )
    no_fi = experts_choice(path, "B200", "0.24.0", "flashinfer=0")
    assert (no_fi.kernel, no_fi.experts) == ("DEEPGEMM_MXFP4", "DeepGemmFP4Experts")
    hopper = experts_choice(path, "H100", "0.24.0")
    assert (hopper.kernel, hopper.experts) == ("MARLIN", "MarlinExperts")
