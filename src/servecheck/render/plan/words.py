"""Words the plan's terminal text and markdown share: layout status, KV memory, error codes,
the expert tensor-parallel table."""

from __future__ import annotations

from servecheck.findings.registry import Severity
from servecheck.plan.config import GIB
from servecheck.plan.memory import LayoutPlan

STATUS_TEXT = {
    "fits": "fits",
    "tight": "fits (tight)",
    "graphs": "OOM in CUDA-graph capture",
    "context": "context too long",
    "no-kv": "no KV-cache memory",
    "weights": "weights do not fit",
    "startup": "utilization above free memory",
    "invalid": "rejected by vLLM",
}


def rejected_codes(p: LayoutPlan) -> str:
    """The codes of the vLLM errors that reject a layout, each once."""
    codes = dict.fromkeys(f.code for f in p.problems if f.severity == Severity.ERROR)
    return ", ".join(codes)


def kv_text(nbytes: float) -> str:
    """KV-cache memory per GPU; nothing left (weights and overheads take it all) is said so."""
    return f"{nbytes / GIB:.1f} GiB" if nbytes > 0 else "none left"


MOE_TP_COLUMNS = (
    "TP",
    "Expert width/rank",
    "Block-FP8 (compressed-tensors)",
    "Block-FP8 (fp8 method)",
    "Per-channel FP8",
)


def moe_tp_cells(row: dict) -> list[str]:
    """One row of the expert tensor-parallel table, in MOE_TP_COLUMNS order."""
    refined = row["block_fp8_plain_refined_to"]
    plain = "yes" if row["block_fp8_plain"] else "no"
    if row["block_fp8_plain"] and refined:
        plain = f"yes (scales refined to {refined}, Triton only)"
    return [
        str(row["tp"]),
        str(row["intermediate_per_rank"]),
        "yes" if row["block_fp8_compressed_tensors"] else "no",
        plain,
        "yes" if row["per_channel_fp8"] else "no",
    ]
