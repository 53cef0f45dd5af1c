"""Memory and parallelism planning: will the model fit, with which layout, at what context.

    make_plan(result, gpu_row, gpus, nodes, options)  -> Plan (result: a check_result.CheckResult)

Modules: weights (bytes per GPU), kv_cache (vLLM's KV sizing), overhead (activation peak,
non-torch, CUDA graphs), layouts (valid TP/PP/EP and vLLM's errors), memory (one layout's
budget and verdict), recommend (choice and `vllm serve` command), planner (all layouts),
Rendering lives in servecheck.render. Constants live in knowledge/memory.toml.
"""

from __future__ import annotations

from pathlib import Path

from servecheck.plan.config import ServeOptions
from servecheck.plan.planner import Plan, make_plan

__all__ = ["Plan", "ServeOptions", "make_plan", "serve_model_arg"]


def serve_model_arg(model: str | Path) -> str:
    """What to pass to `vllm serve`: the checkpoint folder (not its config.json)."""
    path = Path(model)
    if path.name == "config.json":
        path = path.parent
    return str(path)
