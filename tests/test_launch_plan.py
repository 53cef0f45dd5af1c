"""Planning a launch: YaRN context against a measured run, launch arguments as constraints,
data-parallel layouts, and the re-checked alternatives when it does not fit."""

from __future__ import annotations

import json

import pytest

from clirun import invoke
from conftest import EXAMPLES, ROOT
from servecheck.api import check, plan_model
from servecheck.plan import ServeOptions
from servecheck.targets import target_from_option

GLM_AIR = EXAMPLES / "glm-4.5-air-derestricted-fp8"
QWEN_FP8 = ROOT / "benchmarks" / "gpu_truth" / "configs" / "qwen3-30b-a3b-fp8"
LLAMA = ROOT / "tests" / "data" / "plan" / "llama-3.1-8b"
TRUTH = ROOT / "tests" / "data" / "gpu_truth"
YARN = json.dumps(
    {
        "rope_scaling": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 32768,
        }
    }
)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


# ---------------------------------------------------------------------------------------------
# Qwen3-30B-A3B-FP8 with the model card's YaRN entry at 65,536 tokens on one H200 (vLLM 0.24)


def test_yarn_65536_plans_without_m007_and_matches_the_measured_kv_cache():
    # vLLM 0.24.0 on an H200 measured 1,025,024 KV tokens for this checkpoint at utilization
    # 0.9 (tests/data/gpu_truth, 8k context). A full-attention KV cache holds the same tokens at
    # any max_model_len, so the YaRN launch at 65,536 must predict the same within 10%.
    record = json.loads((TRUTH / "dummy-qwen3-30b-a3b-fp8-len8k-u090.json").read_text())
    measured = record["memory"]["kv_tokens"]
    report = check(
        QWEN_FP8,
        vllm_version="0.24.0",
        target=target_from_option("H200", 1),
        launch=[
            "--max-model-len",
            "65536",
            "--hf-overrides",
            YARN,
            "--gpu-memory-utilization",
            "0.9",
        ],
    )
    assert "M007" not in codes(report.findings) and report.verdict != "fail"
    plan = report.plan
    assert plan.max_len.derived == 131072 and plan.max_model_len == 65536
    predicted = plan.recommended.kv_tokens
    assert abs(predicted - measured) / measured < 0.10, (predicted, measured)


def test_the_same_launch_on_0_33_is_refused_with_vllms_text():
    report = check(
        QWEN_FP8,
        vllm_version="0.33.0",
        target=target_from_option("H200", 1),
        launch=["--max-model-len", "65536", "--hf-overrides", YARN],
    )
    m007 = next(f for f in report.findings if f.code == "M007")
    assert "max_position_embeddings=40960" in m007.vllm_message
    l005 = next(f for f in report.findings if f.code == "L005")
    assert "not applied" in l005.message


def test_long_max_model_len_env_turns_the_error_into_a_warning():
    report = check(
        QWEN_FP8,
        vllm_version="0.33.0",
        target=target_from_option("H200", 1),
        launch="VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve m --max-model-len 65536",
    )
    assert "M007" not in codes(report.findings) and "L006" in codes(report.findings)
    assert report.plan.command.serve.startswith("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve")


# ---------------------------------------------------------------------------------------------
# plan: launch arguments constrain the search


def test_plan_takes_launch_arguments_as_constraints():
    plan = plan_model(LLAMA, gpu="H100", gpus=8, launch=["-tp", "2", "--max-model-len", "16k"])
    assert {p.layout.tp for p in plan.layouts} == {2}
    assert plan.max_model_len == 16000
    assert plan.recommended.layout.label == "DP4×TP2"
    assert "--max-model-len 16000" in plan.command.serve


def test_launch_options_replace_plans_own():
    plan = plan_model(
        LLAMA,
        gpu="H100",
        gpus=1,
        options=ServeOptions(max_model_len=8192, kv_cache_dtype="auto"),
        launch=["--kv-cache-dtype", "fp8"],
    )
    assert plan.kv_dtype == "fp8" and plan.max_model_len == 8192


def test_plan_exits_1_on_an_error_finding():
    result = invoke(
        [
            "plan",
            QWEN_FP8,
            "--gpu",
            "H200",
            "--vllm-version",
            "0.33.0",
            "--",
            "--max-model-len",
            "64k",
        ]
    )
    assert result.exit_code == 1 and "M007" in result.stdout


def test_plan_json_explains_the_choice():
    result = invoke(["plan", LLAMA, "--gpu", "H100", "--gpus", "8", "--format", "json"])
    data = json.loads(result.stdout)
    assert data["recommended"] == "DP8" and data["runner_up"] == "TP8"
    assert data["choice"].startswith("DP8 over TP8")
    assert any(row["data_parallel_size"] == 8 for row in data["layouts"])


# ---------------------------------------------------------------------------------------------
# GLM-4.5-Air FP8 on one RTX PRO 6000: what would fit, each re-checked


@pytest.fixture(scope="module")
def glm_air_one_card():
    return plan_model(GLM_AIR, gpu="RTX PRO 6000", gpus=1)


def test_glm_air_alternatives_include_the_offload_that_makes_it_load(glm_air_one_card):
    plan = glm_air_one_card
    assert not plan.fits
    kinds = {a.kind: a for a in plan.alternatives}
    assert {"cpu-offload", "more-gpus", "other-gpu"} <= set(kinds)
    offload = kinds["cpu-offload"]
    gb = int(offload.change.split()[-1])
    # the weights are about 101 GiB on a 95 GiB card: a few GiB do not do, tens do
    assert 10 < gb < 60
    assert f"--cpu-offload-gb {gb}" in offload.command and "PCIe" in offload.cost
    assert kinds["more-gpus"].command.endswith("--tensor-parallel-size 2")


def test_each_alternative_is_rechecked(glm_air_one_card):
    plan = glm_air_one_card
    offload = next(a for a in plan.alternatives if a.kind == "cpu-offload")
    gb = int(offload.change.split()[-1])

    def launch(n: int):
        card = target_from_option("RTX PRO 6000")
        return check(GLM_AIR, target=card, launch=["--cpu-offload-gb", str(n)])

    fits, one_less = launch(gb), launch(gb - 1)
    assert fits.plan.fits and not one_less.plan.fits  # the least whole GiB that fits
    assert "M012" in codes(fits.findings)
    for alt in plan.alternatives:
        if alt.kind == "other-gpu":
            name = alt.change.split("x ", 1)[1].split(" (")[0]
            assert plan_model(GLM_AIR, gpu=name, gpus=1).fits


def test_check_of_the_launch_lists_the_alternatives():
    result = invoke(["check", GLM_AIR, "--gpu", "RTX PRO 6000", "--", "vllm", "serve", "x"])
    assert result.exit_code == 1
    assert "What would fit (each re-checked):" in result.stdout
    assert "--cpu-offload-gb" in result.stdout


def test_offload_is_ignored_on_the_v2_runner_before_0_28():
    launch = "vllm serve m --cpu-offload-gb 8 --max-model-len 2048"
    old = check(
        LLAMA, vllm_version="0.24.0", target=target_from_option("RTX 4070 Ti"), launch=launch
    )
    new = check(
        LLAMA, vllm_version="0.33.0", target=target_from_option("RTX 4070 Ti"), launch=launch
    )
    assert "M013" in codes(old.findings) and old.verdict == "fail"
    assert "M012" in codes(new.findings) and new.verdict == "warn"


# ---------------------------------------------------------------------------------------------
# the launch's own layout and the GPUs it needs


def test_launch_sizes_the_target_and_refuses_too_few_gpus():
    sized = check(LLAMA, target=target_from_option("H100"), launch="vllm serve m -tp 2 -dp 2")
    assert sized.target.count == 4 and sized.plan.layouts[0].layout.label == "DP2×TP2"
    short = check(LLAMA, target=target_from_option("H100", 2), launch="vllm serve m -tp 4")
    assert "L008" in codes(short.findings) and short.verdict == "fail"


def test_expert_parallel_on_a_dense_model_is_noted():
    report = check(LLAMA, target=target_from_option("H100", 2), launch="vllm serve m -tp 2 -ep")
    assert "L009" in codes(report.findings)
    assert report.plan.layouts[0].layout.label == "TP2"


def test_kv_cache_memory_bytes_that_do_not_fit():
    report = check(
        LLAMA, target=target_from_option("L4"), launch="vllm serve m --kv-cache-memory-bytes 20G"
    )
    assert "M011" in codes(report.findings) and report.verdict == "fail"
