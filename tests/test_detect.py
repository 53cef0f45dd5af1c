"""Local GPU detection: nvidia-smi parsing, the torch arch rule and the no-GPU path."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from servecheck.hardware.detect import (
    NVIDIA_SMI_FIELDS,
    arch_list_supports,
    detect_gpus,
    parse_nvidia_smi_cuda_version,
    parse_nvidia_smi_query,
)
from servecheck.hardware.gpus import find_gpu

DATA = Path(__file__).parent / "data" / "nvidia-smi"
# torch.cuda.get_arch_list() of torch 2.11.0+cu130, printed on the same H200 machine
TORCH_211_CU130 = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


def _has_nvidia_driver() -> bool:
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidiactl")


# ------------------------------------------------------------------ parsing real output


def test_parse_real_h200_query() -> None:
    (row,) = parse_nvidia_smi_query((DATA / "h200_query_noheader_nounits.csv").read_text())
    assert row.name == "NVIDIA H200"
    assert row.memory_total_bytes == 143771 * 2**20
    assert row.cc == "9.0"
    assert row.driver_version == "580.159.04"
    gpu = find_gpu(row.name)
    assert gpu.name == "H200 SXM"
    assert gpu.cc == row.cc
    assert gpu.reported_memory_bytes == row.memory_total_bytes


def test_parse_real_h200_query_with_header_and_units() -> None:
    with_units = parse_nvidia_smi_query((DATA / "h200_query_header_units.csv").read_text())
    plain = parse_nvidia_smi_query((DATA / "h200_query_noheader_nounits.csv").read_text())
    assert with_units == plain


def test_cuda_version_from_real_header() -> None:
    assert parse_nvidia_smi_cuda_version((DATA / "h200_nvidia-smi.txt").read_text()) == "13.0"
    assert parse_nvidia_smi_cuda_version("no header here") is None


def test_unified_memory_reports_na() -> None:
    # GB10 (DGX Spark) prints [N/A] for memory.total (seen in public nvidia-smi logs)
    (row,) = parse_nvidia_smi_query("NVIDIA GB10, [N/A], 12.1, 580.126.09\n")
    assert row.memory_total_bytes is None
    assert row.cc == "12.1"
    assert find_gpu(row.name).cc == "12.1"


def test_query_without_compute_cap_for_old_drivers() -> None:
    fields = tuple(f for f in NVIDIA_SMI_FIELDS if f != "compute_cap")
    rows = parse_nvidia_smi_query(
        "Tesla T4, 15360, 470.57.02\nTesla T4, 15360, 470.57.02\n", fields
    )
    assert [r.cc for r in rows] == [None, None]
    assert rows[1].memory_total_bytes == 15360 * 2**20


def test_malformed_query_output_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_nvidia_smi_query("NVIDIA H200, 143771\n")


# ------------------------------------------------------------------ torch arch rule


@pytest.mark.parametrize(
    ("capability", "ok"),
    [
        (90, True),  # H200: sm_90
        (103, True),  # B300: sm_100 code runs on 10.3 (same major, lower minor)
        (121, True),  # GB10: sm_120 code runs on 12.1
        (89, True),  # L4: sm_86 code runs on 8.9
        (110, False),  # Jetson Thor: no sm_11x code and no PTX in this build
        (70, False),  # V100: CUDA 13 builds have no sm_70
    ],
)
def test_arch_rule_on_a_real_torch_arch_list(capability: int, ok: bool) -> None:
    assert arch_list_supports(TORCH_211_CU130, capability) is ok


def test_arch_rule_suffixes_and_ptx() -> None:
    assert not arch_list_supports(["sm_86"], 80)  # a later minor does not run on an earlier one
    assert not arch_list_supports(["sm_90"], 100)  # nor across majors
    assert arch_list_supports(["compute_90"], 120)  # PTX is JIT-compiled forward
    assert not arch_list_supports(["compute_120"], 90)
    assert arch_list_supports(["sm_90a"], 90)
    assert not arch_list_supports(["sm_100a"], 103)  # arch-specific: exactly 10.0
    assert arch_list_supports(["sm_100f"], 103)  # family-specific: 10.0 and 10.3
    assert not arch_list_supports(["sm_120f"], 100)
    assert not arch_list_supports([], 90)


# ------------------------------------------------------------------ detection


@pytest.mark.skipif(_has_nvidia_driver(), reason="this machine has an NVIDIA driver")
def test_no_gpu_here_says_why() -> None:
    result = detect_gpus()
    assert not result.found
    assert result.gpus == ()
    assert result.reason is not None
    assert result.reason.startswith("no NVIDIA GPU found")
    assert "NVML" in result.reason
    assert "nvidia-smi: not found on PATH" in result.reason
    assert result.torch_arch_ok is None


def test_detection_disabled() -> None:
    result = detect_gpus(use_nvml=False, use_nvidia_smi=False)
    assert not result.found
    assert result.method == "none"
    assert result.reason == "no NVIDIA GPU found: detection disabled"


def _fake_nvidia_smi(folder: Path, script: str) -> None:
    """An ``nvidia-smi`` on PATH that replays recorded output (the driver is what is faked)."""
    path = folder / "nvidia-smi"
    path.write_text(f"#!{sys.executable}\n{script}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX executable script")
def test_detection_through_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = f"""import sys
data = {str(DATA)!r}
name = "h200_query_noheader_nounits.csv" if len(sys.argv) > 1 else "h200_nvidia-smi.txt"
sys.stdout.write(open(data + "/" + name).read())
"""
    _fake_nvidia_smi(tmp_path, script)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = detect_gpus(use_nvml=False, check_torch=False)
    assert result.found
    assert result.method == "nvidia-smi"
    assert (result.driver_version, result.cuda_driver_version) == ("580.159.04", "13.0")
    (gpu,) = result.gpus
    assert (gpu.name, gpu.cc, gpu.capability) == ("NVIDIA H200", "9.0", 90)
    assert gpu.memory_total_bytes == 143771 * 2**20
    assert gpu.gpu is not None and gpu.gpu.name == "H200 SXM"
    assert gpu.torch_arch_ok is None and result.torch_arch_ok is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX executable script")
def test_failing_nvidia_smi_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."
    )
    _fake_nvidia_smi(tmp_path, f"import sys\nprint({message!r})\nsys.exit(9)\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = detect_gpus(use_nvml=False)
    assert not result.found
    assert result.reason is not None
    assert "exit 9" in result.reason
    assert "couldn't communicate with the NVIDIA driver" in result.reason


@pytest.mark.skipif(not _has_nvidia_driver(), reason="needs an NVIDIA driver")
def test_real_gpus_are_detected_and_known() -> None:
    result = detect_gpus()
    assert result.found, result.reason
    assert result.method in {"nvml", "nvidia-smi"}
    assert result.driver_version and result.cuda_driver_version
    for gpu in result.gpus:
        assert gpu.gpu is not None, f"{gpu.name} is missing from gpus.toml"
        assert gpu.gpu.capability == gpu.capability
        if gpu.gpu.nvml_memory_mib is not None and gpu.memory_total_bytes is not None:
            assert gpu.memory_total_bytes == gpu.gpu.nvml_memory_mib * 2**20
    if result.torch_arch_list:
        assert result.torch_arch_ok is not None
