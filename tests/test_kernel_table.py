"""docs/kernel-table.md is generated from the code and committed: it must be current."""

from __future__ import annotations

from conftest import ROOT
from servecheck.hardware.kernel_matrix import COLUMNS, matrix, render_markdown
from servecheck.versions import Release


def test_committed_kernel_table_is_current():
    committed = (ROOT / "docs" / "kernel-table.md").read_text(encoding="utf-8")
    assert committed == render_markdown(Release.parse("0.33.0")), (
        "docs/kernel-table.md is stale: run python scripts/kernel_table.py"
    )


def test_kernel_table_shape_and_key_cells():
    rows = dict(matrix(Release.parse("0.33.0")))
    titles = [c[0] for c in COLUMNS]
    assert titles[:8] == ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120", "sm_121"]

    def at(row: str, col: str) -> str:
        return rows[row][titles.index(col)].text

    moe = "W8A8Fp8 per-channel (FP8_DYNAMIC): MoE"
    assert at(moe, "sm_120") == "TRITON" and at(moe, "sm_90") == "VLLM_CUTLASS"
    assert at(moe, "sm_89") == "TRITON" and at(moe, "sm_80") == "MARLIN (W-only)"
    lin = "W8A8Fp8 per-channel (FP8_DYNAMIC): linear"
    assert at(lin, "sm_89") == "CUTLASS" and at(lin, "sm_86") == "Marlin (W-only)"
    assert at("W4A4Fp4 NVFP4: MoE", "sm_100") == "FLASHINFER_TRTLLM"
    assert at("W4A4Fp4 NVFP4: MoE", "sm_120") == "FLASHINFER_CUTLASS"
    assert at("W8A8Fp8 block 128x128 (FP8_BLOCK): linear", "CPU").startswith("✗ ValueError")
    assert at("W8A8Fp8 block 128x128 (FP8_BLOCK): linear", "CPU+AMX").startswith("CPU FP8 block")
