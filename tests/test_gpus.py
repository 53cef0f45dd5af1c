"""The GPU table (knowledge/gpus.toml) and find_gpu."""

from __future__ import annotations

import re

import pytest

from servecheck.errors import InputError
from servecheck.hardware.gpus import (
    Gpu,
    UnknownGpuError,
    capability_info,
    find_gpu,
    load_capabilities,
    load_gpus,
    parse_capability,
)

GPUS = load_gpus()


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


# ------------------------------------------------------------------ table integrity


def test_table_is_large_enough() -> None:
    assert len(GPUS) >= 40


def test_names_are_unique() -> None:
    names = [_compact(g.name) for g in GPUS]
    assert len(names) == len(set(names))


def test_labels_are_unique_across_rows() -> None:
    owner: dict[str, str] = {}
    for gpu in GPUS:
        for label in gpu.labels:
            key = _compact(label)
            assert owner.setdefault(key, gpu.name) == gpu.name, (label, owner[key], gpu.name)


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.name)
def test_row_has_a_source_and_sane_numbers(gpu: Gpu) -> None:
    assert gpu.source.startswith("https://")
    assert gpu.memory_gib > 0
    assert gpu.memory_bandwidth_gbs > 0
    assert gpu.tdp is None or 10 <= gpu.tdp <= 1500
    assert gpu.arch in {"volta", "turing", "ampere", "ada", "hopper", "blackwell"}
    assert gpu.form_factor in {None, "SXM", "PCIe", "Superchip", "SoC"}
    assert gpu.aliases, "every row needs at least one short form"


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.name)
def test_row_agrees_with_its_capability_row(gpu: Gpu) -> None:
    info = capability_info(gpu.cc)
    assert gpu.capability == info.capability == parse_capability(gpu.cc)
    assert gpu.max_shared_memory_per_block_optin == info.max_shared_memory_per_block_optin
    assert gpu.min_cuda == info.min_cuda
    assert gpu.max_cuda == info.max_cuda
    assert gpu.fp8_tensor_cores == info.fp8_tensor_cores
    assert gpu.fp4_tensor_cores == info.fp4_tensor_cores
    # vLLM 0.33 platforms/cuda.py supports_fp8: capability >= 89, the same line as the tensor cores
    assert gpu.supports_fp8 == gpu.fp8_tensor_cores


@pytest.mark.parametrize("gpu", [g for g in GPUS if g.nvml_memory_mib], ids=lambda g: g.name)
def test_reported_memory_is_close_to_marketed(gpu: Gpu) -> None:
    assert gpu.nvml_memory_mib is not None
    ratio = gpu.nvml_memory_mib / (gpu.memory_gib * 1024)
    assert 0.9 <= ratio <= 1.02, ratio
    assert gpu.total_memory_bytes == gpu.nvml_memory_mib * 2**20


def test_capability_rows_match_the_cuda_programming_guide() -> None:
    # CUDA C++ Programming Guide, Table 31 (KB = 1024 bytes); 7.0 from the Volta tuning guide
    expected_kib = {70: 96, 75: 64, 80: 163, 86: 99, 87: 163, 89: 99, 90: 227, 100: 227,
                    103: 227, 110: 227, 120: 99, 121: 99}  # fmt: skip
    caps = load_capabilities()
    assert set(caps) == set(expected_kib)
    for capability, kib in expected_kib.items():
        assert caps[capability].max_shared_memory_per_block_optin == kib * 1024
    # LLVM clang/lib/Basic/Cuda.cpp MinVersionForOffloadArch
    minimum = {70: "9.0", 75: "10.0", 80: "11.0", 86: "11.1", 87: "11.4", 89: "11.8", 90: "11.8",
               100: "12.8", 103: "12.9", 110: "13.0", 120: "12.8", 121: "12.9"}  # fmt: skip
    assert {c: i.min_cuda for c, i in caps.items()} == minimum
    assert {c for c, i in caps.items() if i.fp4_tensor_cores} == {100, 103, 110, 120, 121}
    assert {c for c, i in caps.items() if i.fp8_tensor_cores} == {89, 90, 100, 103, 110, 120, 121}


@pytest.mark.parametrize(
    ("name", "cc", "smem", "min_cuda"),
    [
        ("RTX PRO 6000 Blackwell Workstation Edition", "12.0", 101376, "12.8"),
        ("GeForce RTX 5090", "12.0", 101376, "12.8"),
        ("GB10 (DGX Spark)", "12.1", 101376, "12.9"),
        ("B200", "10.0", 232448, "12.8"),
        ("B300", "10.3", 232448, "12.9"),
        ("Jetson AGX Thor", "11.0", 232448, "13.0"),
        ("H100 SXM", "9.0", 232448, "11.8"),
        ("L40S", "8.9", 101376, "11.8"),
        ("A100 80GB SXM", "8.0", 166912, "11.0"),
        ("A10G", "8.6", 101376, "11.1"),
        ("T4", "7.5", 65536, "10.0"),
        ("V100 SXM2 16GB", "7.0", 98304, "9.0"),
    ],
)
def test_known_capability_facts(name: str, cc: str, smem: int, min_cuda: str) -> None:
    gpu = next(g for g in GPUS if g.name == name)
    assert (gpu.cc, gpu.max_shared_memory_per_block_optin, gpu.min_cuda) == (cc, smem, min_cuda)


def test_h200_memory_matches_what_the_driver_reported() -> None:
    # tests/data/nvidia-smi/h200_query_noheader_nounits.csv: "NVIDIA H200, 143771, 9.0, ..."
    assert find_gpu("NVIDIA H200").nvml_memory_mib == 143771


REQUIRED = [
    "RTX PRO 6000 Blackwell Workstation Edition",
    "RTX PRO 6000 Blackwell Server Edition",
    "RTX PRO 6000 Blackwell Max-Q Workstation Edition",
    "GeForce RTX 5090",
    "GeForce RTX 5080",
    "GeForce RTX 5070 Ti",
    "B200",
    "GB10 (DGX Spark)",
    "H100 SXM",
    "H100 PCIe",
    "H100 NVL",
    "H200 SXM",
    "H200 NVL",
    "H20",
    "H800 SXM",
    "L40S",
    "L40",
    "L4",
    "RTX 6000 Ada Generation",
    "GeForce RTX 4090",
    "GeForce RTX 4080",
    "GeForce RTX 4070 Ti",
    "A100 40GB SXM",
    "A100 40GB PCIe",
    "A100 80GB SXM",
    "A100 80GB PCIe",
    "A10",
    "A10G",
    "A30",
    "A40",
    "RTX A6000",
    "RTX A5000",
    "GeForce RTX 3090",
    "GeForce RTX 3090 Ti",
    "GeForce RTX 3080",
    "T4",
    "V100 SXM2 16GB",
    "V100 SXM2 32GB",
]


def test_required_gpus_are_present() -> None:
    names = {g.name for g in GPUS}
    assert not [n for n in REQUIRED if n not in names]
    assert any(n.startswith("GH200") for n in names)
    assert any(n.startswith("A800") for n in names)
    assert {"A16", "A2"} & names


# ------------------------------------------------------------------ capability parsing


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12.0", 120),
        ("12.1", 121),
        ("9.0", 90),
        ("8.6", 86),
        ("10.3", 103),
        ("7.5", 75),
        ("sm_120", 120),
        ("sm90", 90),
        ("89", 89),
    ],
)
def test_parse_capability(text: str, value: int) -> None:
    assert parse_capability(text) == value


@pytest.mark.parametrize("text", ["", "5", "9.10", "x.y", "sm_"])
def test_parse_capability_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_capability(text)


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("rtx pro 6000", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("RTX PRO 6000 Blackwell", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("pro6000", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("rtx6000 pro", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("RTX_PRO_6000", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("6000 blackwell", "RTX PRO 6000 Blackwell Workstation Edition"),
        ("rtx pro 6000 server", "RTX PRO 6000 Blackwell Server Edition"),
        ("RTX-PRO-6000-Max-Q", "RTX PRO 6000 Blackwell Max-Q Workstation Edition"),
        ("5090", "GeForce RTX 5090"),
        ("NVIDIA GeForce RTX 5090", "GeForce RTX 5090"),
        ("h100", "H100 SXM"),
        ("h100 sxm", "H100 SXM"),
        ("H100-SXM5-80GB", "H100 SXM"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("h100 pcie", "H100 PCIe"),
        ("H100 94GB", "H100 NVL"),
        ("h200", "H200 SXM"),
        ("a100", "A100 80GB SXM"),
        ("A100 40GB", "A100 40GB SXM"),
        ("a100 pcie 40gb", "A100 40GB PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
        ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
        ("gh200", "GH200 96GB"),
        ("NVIDIA GH200 480GB", "GH200 96GB"),
        ("NVIDIA GH200 144G HBM3e", "GH200 144GB"),
        ("NVIDIA DGX B200", "B200"),
        ("NVIDIA B300 SXM6 AC", "B300"),
        ("dgx spark", "GB10 (DGX Spark)"),
        ("NVIDIA GB10", "GB10 (DGX Spark)"),
        ("jetson thor", "Jetson AGX Thor"),
        ("Tesla T4", "T4"),
        ("l4", "L4"),
        ("l40", "L40"),
        ("L40S", "L40S"),
        ("a10", "A10"),
        ("A10G", "A10G"),
        ("rtx 6000", "RTX 6000 Ada Generation"),
        ("v100", "V100 SXM2 32GB"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2 16GB"),
        ("rtx 3090 ti", "GeForce RTX 3090 Ti"),
    ],
)
def test_find_gpu(query: str, name: str) -> None:
    assert find_gpu(query).name == name


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.name)
def test_every_label_finds_its_own_row(gpu: Gpu) -> None:
    for label in gpu.labels:
        assert find_gpu(label) is gpu, label


def test_cpu_is_not_a_gpu() -> None:
    with pytest.raises(UnknownGpuError) as caught:
        find_gpu("cpu")
    assert "CPU backend" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(
    ("query", "suggested"),
    [
        ("rtx 3080 ti", "GeForce RTX 3080"),  # a different card: no silent fallback
        ("RTX 4090 D", "GeForce RTX 4090"),
        ("rtx 5900", "GeForce RTX 5090"),
        ("h1000", "H100 SXM"),
        ("a100 48gb", "A100 80GB SXM"),  # memory that no A100 has
    ],
)
def test_unknown_names_get_suggestions(query: str, suggested: str) -> None:
    with pytest.raises(UnknownGpuError) as caught:
        find_gpu(query)
    assert caught.value.name == query
    assert suggested in caught.value.suggestions
    assert suggested in str(caught.value)


@pytest.mark.parametrize("query", ["quadro rtx 6000", "rtx 4090 laptop", "40", "", "mi300x"])
def test_no_guessing(query: str) -> None:
    with pytest.raises(UnknownGpuError):
        find_gpu(query)


def test_load_gpus_is_cached() -> None:
    assert load_gpus() is load_gpus()
