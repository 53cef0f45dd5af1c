"""Words the plan's terminal text and markdown share: layout status, KV memory, error codes."""

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
