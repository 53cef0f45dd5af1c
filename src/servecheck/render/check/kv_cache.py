"""The KV-cache dtype a report shows: the plan's, else what the checkpoint's scales set."""

from __future__ import annotations

from servecheck.model.inventory import ATTENTION
from servecheck.report import CheckReport


def kv_cache_dtype(report: CheckReport) -> str | None:
    """The KV-cache dtype: the plan's when there is a plan, else fp8 when the checkpoint carries
    KV-cache scales that vLLM loads, else None (the model's dtype)."""
    if report.plan is not None:
        return report.plan.kv_dtype
    kv = [r for r in report.resolution.resolutions if r.module.kind == ATTENTION]
    if any(r.method and "KVCache" in r.method for r in kv):
        return "fp8"
    return None


def kv_cache_text(report: CheckReport) -> str:
    """What the KV-cache row of the module table says."""
    dtype = kv_cache_dtype(report)
    if dtype is None or dtype == "auto":
        return f"{report.model.dtype or 'unquantized'} (model dtype)"
    return dtype if report.plan is not None else f"{dtype} (checkpoint scales)"
