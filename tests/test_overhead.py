"""The profile-run terms of plan/overhead.py, keyed by vLLM release (vllm_versions.toml rows
model_runner_v2_archs, v2_profile_sampler, v2_cudagraph_estimate, moe_workspace,
moe_permute_scratch). The end-to-end figures are held to measured runs in test_gpu_truth.py."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from servecheck.model.config import parse_config
from servecheck.plan.config import MIB, era_for
from servecheck.plan.layouts import Layout
from servecheck.plan.overhead import ProfileRun, model_runner, overheads, profile_peak
from servecheck.versions import resolve_version

CONFIGS = ROOT / "benchmarks" / "gpu_truth" / "configs"


def cfg(name: str):
    return parse_config(json.loads((CONFIGS / name / "config.json").read_text()))


def run(**kw) -> ProfileRun:
    base = dict(
        batched_tokens=8192,
        num_seqs=1024,
        dtype_bytes=2,
        last_stage=True,
        enforce_eager=True,
        layers=48,
        capability=90,
        moe_experts="TritonExperts",
    )
    return ProfileRun(**{**base, **kw})


def terms(model: str, version: str, **kw) -> dict[str, int]:
    v = resolve_version(version)
    _, parts = profile_peak(cfg(model), Layout(tp=1), era_for(v), run(**kw), v)
    return dict(parts)


@pytest.mark.parametrize(
    ("model", "version", "runner"),
    [
        ("llama-3.1-8b", "0.11.0", "V1"),
        ("llama-3.1-8b", "0.24.0", "V2"),
        ("mixtral-8x7b", "0.24.0", "V1"),
        ("qwen3-30b-a3b", "0.24.0", "V1"),
        ("mixtral-8x7b", "0.33.0", "V2"),
    ],
)
def test_model_runner_per_release(model: str, version: str, runner: str) -> None:
    v = resolve_version(version)
    assert model_runner(cfg(model), era_for(v), v) == runner


def test_fused_moe_workspace_is_kept_from_0_24() -> None:
    # Qwen3-30B-A3B: 8192 tokens x top-8 x (max(768, 2048) + max(1536, 2048)) x 2 B
    t24 = terms("qwen3-30b-a3b", "0.24.0")
    assert t24["fused-MoE workspace"] == 8192 * 8 * (2048 + 2048) * 2
    assert t24["cuBLAS workspace"] == 32 * MIB  # sm_90, torch's CublasHandlePool default
    # 0.11 allocates the caches inside the forward pass instead
    t11 = terms("qwen3-30b-a3b", "0.11.0")
    assert "fused-MoE workspace" not in t11
    assert t11["forward pass"] > t24["forward pass"]
    # monolithic kernels take no workspace; 0.33 warms cuBLAS up before the snapshot
    assert (
        terms("gpt-oss-20b", "0.24.0", moe_experts="OAITritonMxfp4ExpertsMonolithic")[
            "fused-MoE workspace"
        ]
        == 0
    )
    assert terms("qwen3-30b-a3b", "0.33.0")["cuBLAS workspace"] == 0


def test_permute_scratch_per_layer_in_0_24_shared_in_0_33() -> None:
    per_layer = terms("qwen3-30b-a3b", "0.24.0", moe_experts="TritonOrCutlassExperts")
    shared = terms("qwen3-30b-a3b", "0.33.0", moe_experts="TritonOrCutlassExperts")
    assert per_layer["MoE permute scratch"] == 48 * shared["MoE permute scratch"] > 0
    assert terms("qwen3-30b-a3b", "0.24.0")["MoE permute scratch"] == 0  # Triton: no scratch


def test_v2_sampler_warm_up_is_one_fp32_copy_in_0_24() -> None:
    llama = cfg("llama-3.1-8b")
    t = terms("llama-3.1-8b", "0.24.0", layers=32, moe_experts=None)
    held = (8192 + 1024) * 4096 * 2
    assert t["sampler warm-up"] == held + 1024 * llama.vocab_size * (2 + 4)
    # the forward pass dominates: 3 x hidden + 3 x intermediate per token
    assert t["forward pass"] == 8192 * (3 * 4096 + 3 * 14336) * 2


def test_v2_runner_cudagraph_estimate_per_release() -> None:
    llama = cfg("llama-3.1-8b")
    for version, counted in (("0.24.0", False), ("0.33.0", True), ("0.11.0", False)):
        v = resolve_version(version)
        ov = overheads(
            llama,
            Layout(tp=1),
            era_for(v),
            run(layers=32, enforce_eager=False, moe_experts=None),
            v,
        )
        assert ov.cudagraph > 0
        assert ov.cudagraph_in_budget is counted, version
    # the V1 runner of 0.24 subtracts its estimate (MoE layers: memory.toml [cudagraph])
    v = resolve_version("0.24.0")
    ov = overheads(cfg("qwen3-30b-a3b"), Layout(tp=1), era_for(v), run(enforce_eager=False), v)
    assert ov.cudagraph_in_budget and ov.runner == "V1"
