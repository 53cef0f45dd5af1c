"""Memory and parallelism planning: will the model fit, with which layout, at what context.

    attach_plan(report)   -> the CheckReport with a plan for its target and the plan's findings
    make_plan(report, gpu_row, gpus, nodes, options)  -> Plan

Modules: weights (bytes per GPU), kv_cache (vLLM's KV sizing), overhead (activation peak,
non-torch, CUDA graphs), layouts (valid TP/PP/EP and vLLM's errors), memory (one layout's
budget and verdict), recommend (choice and `vllm serve` command), planner (all layouts),
Rendering lives in servecheck.render. Constants live in knowledge/memory.toml.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from servecheck.core import CheckReport
from servecheck.plan.config import ServeOptions
from servecheck.plan.planner import Plan, make_plan

__all__ = ["Plan", "ServeOptions", "attach_plan", "make_plan", "serve_model_arg"]


def serve_model_arg(model: str | Path) -> str:
    """What to pass to `vllm serve`: the checkpoint folder (not its config.json)."""
    path = Path(model)
    if path.name == "config.json":
        path = path.parent
    return str(path)


def attach_plan(report: CheckReport) -> CheckReport:
    """Add the plan for report.target (a GPU and a count) and its findings to a CheckReport."""
    target = report.target
    if target.kind != "gpu":
        return report
    from servecheck.errors import InputError
    from servecheck.hardware.gpus import find_gpu

    try:
        row = find_gpu(target.name)
    except InputError:
        return report
    total = None
    if target.memory_bytes and target.memory_bytes != row.total_memory_bytes:
        # a detected GPU: its driver-reported total, less the CUDA reserve
        from servecheck.plan.config import GIB, table

        total = target.memory_bytes - round(table()["cuda_total"]["reserve_gib"] * GIB)
    plan = make_plan(
        report,
        row,
        max(target.count, 1),
        1,
        ServeOptions(),
        model_arg=serve_model_arg(report.location),
        cuda_total=total,
    )
    findings = sorted((*report.findings, *plan.findings), key=lambda f: (f.severity.rank, f.code))
    return dataclasses.replace(report, plan=plan, findings=tuple(findings))
