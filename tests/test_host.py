"""Host facts are read at the edge into values; kernel selection uses only the values."""

from __future__ import annotations

import platform

from conftest import FIXTURES
from servecheck.api import check
from servecheck.core import CpuFacts, Target
from servecheck.host import read_cpu

SAPPHIRE_RAPIDS = CpuFacts(
    arch="x86_64",
    vendor="GenuineIntel",
    flags=frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}),
    source="described",
)
ZEN3 = CpuFacts(arch="x86_64", vendor="AuthenticAMD", flags=frozenset({"avx2"}), source="described")


def test_read_cpu_describes_this_machine():
    facts = read_cpu()
    assert facts.arch == (platform.machine() or "unknown")
    assert facts.source == "this machine"


def _block_fp8_on(cpu: CpuFacts):
    report = check(FIXTURES / "llama-FP8_BLOCK", target=Target("cpu", "cpu", cpu=cpu))
    assert report.target.cpu == cpu  # the described CPU is used, not replaced by this machine's
    return report


def test_cpu_kernels_follow_the_described_cpu_not_the_host():
    amx = _block_fp8_on(SAPPHIRE_RAPIDS)
    plain = _block_fp8_on(ZEN3)
    assert not [f for f in amx.findings if f.code == "H001"]
    h001 = [f for f in plain.findings if f.code == "H001"]
    assert h001 and "requires AMX tile support" in (h001[0].vllm_message or "")
    assert "described" in " ".join(amx.kernels.notes)


def test_a_cpu_target_without_facts_gets_this_machines():
    report = check(FIXTURES / "llama-bf16", target=Target("cpu", "cpu"))
    assert report.target.cpu == read_cpu()
