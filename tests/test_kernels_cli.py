"""`servecheck gpus` and `servecheck check --gpu` / `--kernel-env` on the command line."""

from __future__ import annotations

import json

from clirun import invoke
from conftest import EXAMPLES
from servecheck.hardware.detect import detect_gpus
from servecheck.hardware.gpus import load_gpus

GLM_AIR = str(EXAMPLES / "glm-4.5-air-derestricted-fp8")


def test_gpus_lists_the_table():
    result = invoke(["gpus"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "RTX PRO 6000" in result.output and "sm_120" in result.output
    data = json.loads(invoke(["gpus", "--format", "json"]).stdout)
    assert len(data) == len(load_gpus()) >= 40
    h100 = next(g for g in data if g["name"] == "H100 SXM")
    assert h100["sm"] == "sm_90" and h100["fp8_tensor_cores"] is True


def test_gpus_one_forgiving_match_with_kernels():
    for name in ("rtx pro 6000", "RTX PRO 6000 Blackwell", "pro6000"):
        result = invoke(["gpus", "--gpu", name, "--format", "json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["sm"] == "sm_120"
    rows = {(k["scheme"], k["layer"]): k for k in data["kernels"]}
    assert rows[("W8A8Fp8 per-channel (FP8_DYNAMIC)", "moe")]["kernel"] == "TRITON"
    text = invoke(["gpus", "--gpu", "H100"], env={"COLUMNS": "160"})
    assert text.exit_code == 0 and "VLLM_CUTLASS" in text.output


def test_gpus_unknown_name_exits_2_with_suggestions():
    result = invoke(["gpus", "--gpu", "rtx 4090 d"])
    assert result.exit_code == 2
    assert "unknown GPU" in result.output and "RTX 4090" in result.output


def test_gpus_detect_says_plainly_when_there_is_none():
    found = detect_gpus().found
    result = invoke(["gpus", "--detect"])
    # nothing found where something was asked for: exit 1
    assert result.exit_code == (0 if found else 1), result.output
    data = json.loads(invoke(["gpus", "--detect", "--format", "json"]).stdout)
    assert data["found"] is found
    if not found:
        assert "No NVIDIA GPU found" in result.output
        assert data["gpus"] == [] and data["reason"]
    else:
        assert all(g["sm"] for g in data["gpus"])


def test_check_gpu_shows_capability_table_and_kernel():
    result = invoke(
        ["check", GLM_AIR, "--gpu", "RTX PRO 6000 Blackwell", "--gpus", "2"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Kernels on RTX PRO 6000 Blackwell Workstation Edition (sm_120)" in out
    assert "sm_89 vs sm_120 ✓" in out and "TRITON" in out and "CUTLASS FP8" in out


def test_check_kernel_env_option():
    args = ["check", GLM_AIR, "--gpu", "RTX PRO 6000", "--kernel-env", "cuda=12.6", "-f", "json"]
    result = invoke(args)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["hardware"]["environment"]["cuda"] == "12.6"
    assert "H005" in {f["code"] for f in data["findings"]}
    bad = invoke(["check", GLM_AIR, "--gpu", "H100", "--kernel-env", "foo=1"])
    assert bad.exit_code == 2


def test_rules_document_the_hardware_codes():
    result = invoke(["rules", "H002"])
    assert result.exit_code == 0
    assert "No <X> MoE backend supports" in result.output
