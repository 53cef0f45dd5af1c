"""docs/kernel-table.md is generated from the code and committed: it must be current."""

from __future__ import annotations

from conftest import ROOT
from servecheck.hardware.kernel_matrix import COLUMNS, matrix, render_markdown
from servecheck.versions import Release

# CPU cells left unmodelled, by release: W4A8-int experts on x86 before 0.25, when vLLM took any
# CPU (cpu_int4_moe.py was Arm-only from 0.25) and whether its op runs on x86 is not known.
CPU_NOT_MODELLED = {"0.24.0": ("W4A8Int (int4 g128, int8 activations): MoE",)}
# quark_ocp_mx.py selects through the linear kernel registry only from 0.27 (vllm_versions.toml
# quark_ocp_mx_kernels): before, its own emulation / AITER paths are not modelled (H009)
NOT_MODELLED = {"0.24.0": ("Quark OCP MXFP4: linear",)}


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


def test_no_cell_of_the_issue_12_formats_is_unmodelled():
    """Every (format x GPU architecture) cell of GPTQ, AWQ, ModelOpt, compressed-tensors and
    fp8 names a kernel or vLLM's error, for each release the table is built for."""
    for version in ("0.24.0", "0.33.0"):
        for title, cells in matrix(Release.parse(version)):
            for col, c in zip(COLUMNS, cells, strict=True):
                if title.startswith(NOT_MODELLED.get(version, ())):
                    assert c.choice is None or not c.choice.modelled, (version, title, col[0])
                    continue
                if col[1] is None and title.startswith(CPU_NOT_MODELLED.get(version, ())):
                    # not modelled on vLLM's CPU build: a warning (H009), never OK
                    assert c.choice is None or not c.choice.modelled or c.text.startswith("✗")
                    continue
                assert c.text != "not modelled", (version, title, col[0])
                assert c.choice is None or c.choice.modelled, (version, title, col[0])


def test_unmodelled_paths_never_yield_ok(tmp_path):
    """Walk (method x GPU x release): whatever is not modelled must not come out OK."""
    import json

    from servecheck.api import check
    from test_preflight import AWQ, GPTQ, LLAMA, MODELOPT_FP8, gpu

    methods = {
        "gptq": GPTQ,
        "awq": AWQ,
        "modelopt": MODELOPT_FP8,
        "bitsandbytes": {"quant_method": "bitsandbytes", "load_in_4bit": True},
        "torchao": {"quant_method": "torchao", "quant_type": {}},
        "quark": {"quant_method": "quark", "global_quant_config": {}},
        "fbgemm_fp8": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0},
        "experts_int8": {"quant_method": "experts_int8"},
    }
    for name, raw in methods.items():
        path = tmp_path / name / "config.json"
        path.parent.mkdir()
        path.write_text(json.dumps({**LLAMA, "torch_dtype": "float16", "quantization_config": raw}))
        for g in ("T4", "A100", "L40S", "H100", "B200", "RTX 5090"):
            for version in ("0.11.0", "0.24.0", "0.33.0"):
                report = check(path, vllm_version=version, target=gpu(g))
                unmodelled = any(not m.choice.modelled for m in report.kernels.modules) or any(
                    f.code == "Q010" for f in report.findings
                )
                if unmodelled:
                    assert report.verdict != "ok", (name, g, version)
