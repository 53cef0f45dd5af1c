"""Memory rows of the comparison: weights, available KV cache, KV tokens, CUDA graphs.

    plan_for(report, run)            -> (plan, layout) for the run's settings, or None
    predicted_findings(report, ...)  -> the prediction's findings for those settings
    memory_rows(report, run, layout) -> rows

The prediction is servecheck's plan for the settings vLLM actually used (max_model_len, memory
utilization, KV-cache dtype, batch limits, eager or graphs, tensor/pipeline sizes as the engine
resolved them), so a difference is servecheck's model of vLLM's memory, not a different setting.
Tolerances are those the GPU-truth tests hold servecheck to (tests/test_gpu_truth.py).
"""

from __future__ import annotations

from typing import Any

from servecheck.check_result import CheckResult
from servecheck.findings.registry import Finding
from servecheck.plan.config import GIB, ServeOptions, era_for
from servecheck.smoke.compare import Row
from servecheck.smoke.runner import ChildRun

WEIGHTS_REL_TOL = 0.015
KV_REL_TOL = 0.06
CUDAGRAPH_REL_TOL = 0.15


def options_from(effective: dict[str, Any]) -> ServeOptions:
    return ServeOptions(
        max_model_len=effective.get("max_model_len"),
        kv_cache_dtype=str(effective.get("kv_cache_dtype") or "auto"),
        gpu_memory_utilization=effective.get("gpu_memory_utilization"),
        max_num_batched_tokens=effective.get("max_num_batched_tokens"),
        max_num_seqs=effective.get("max_num_seqs"),
        enforce_eager=bool(effective.get("enforce_eager")),
    )


def _gib(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / GIB:.2f} GiB" if n >= 0.1 * GIB or n == 0 else f"{n / 2**20:.1f} MiB"


def _within(ours: float, theirs: float, rel: float) -> bool:
    if theirs == 0:
        return ours == 0
    return abs(ours / theirs - 1) <= rel


def _row(name: str, ours: float | None, theirs: float | None, rel: float, fmt: Any) -> Row:
    if ours is None or theirs is None:
        return Row(name, fmt(ours), fmt(theirs) if theirs is not None else "not reported", None)
    note = f"within {rel:.1%}" if theirs and _within(ours, theirs, rel) else ""
    return Row(name, fmt(ours), fmt(theirs), _within(ours, theirs, rel), note)


def observed(run: ChildRun) -> dict[str, float | None]:
    """vLLM's figures: the worker's exact bytes where the child could read them, else the
    rounded GiB it logged."""
    mem = run.parsed.get("memory") or {}
    graphs = run.parsed.get("graphs") or {}
    exact = run.result.get("memory_exact") or {}

    def pick(key: str, log_key: str, src: dict[str, Any]) -> float | None:
        if key in exact:
            return float(exact[key])
        return float(src[log_key]) * GIB if log_key in src else None

    kv = pick("available_kv_cache_memory_bytes", "available_kv_gib", mem)
    if kv is None and "kv_reserved_gib" in mem:
        kv = float(mem["kv_reserved_gib"]) * GIB
    return {
        "weights": pick("model_memory_usage", "model_loading_gib", mem),
        "available_kv": kv,
        "kv_tokens": float(mem["kv_tokens"]) if "kv_tokens" in mem else None,
        "cudagraph": pick("cudagraph_memory_estimate", "estimated_gib", graphs),
        "cudagraph_actual": float(graphs["capture_gib"]) * GIB if "capture_gib" in graphs else None,
    }


def memory_rows(report: CheckResult, run: ChildRun, layout: Any = None) -> list[Row]:
    """The memory comparison on a GPU (`layout`: plan_for's answer); on vLLM's CPU backend only
    what it logs, not compared."""
    if run.outcome not in ("generated", "loaded"):
        return []
    seen = observed(run)
    tokens = lambda n: "-" if n is None else f"{int(n):,}"  # noqa: E731
    if layout is None:
        theirs = _gib(seen["weights"]) if seen["weights"] is not None else "not reported"
        rows = [Row("weights", _gib(report.total_bytes or None), theirs, None)]
        if seen["available_kv"] is not None:
            rows.append(Row("KV cache", "-", _gib(seen["available_kv"]), None, "not modelled"))
        if seen["kv_tokens"] is not None:
            rows.append(Row("KV tokens", "-", tokens(seen["kv_tokens"]), None, "not modelled"))
        return rows
    plan, lp = layout
    eff = settings(run)
    fixed = eff.get("kv_cache_memory_bytes")
    predicted_kv: float = float(fixed) if fixed else float(lp.available_kv)
    predicted_tokens: float = float(lp.kv_tokens)
    if fixed:  # vLLM skips profiling and takes this budget as it is
        from servecheck.plan.kv_cache import capacity

        cap = capacity(
            lp.kv.stages[0],
            int(fixed),
            plan.max_model_len,
            lp.kv.block_size,
            era_for(report.version),
            plan.batch.max_num_batched_tokens,
        )
        predicted_tokens = float(cap.tokens)
    ov = lp.stages[0].overheads
    graphs = float(ov.cudagraph if ov.cudagraph_in_budget else 0)
    rows = [
        _row("weights", float(lp.weights_per_gpu), seen["weights"], WEIGHTS_REL_TOL, _gib),
        _row("available KV cache", predicted_kv, seen["available_kv"], KV_REL_TOL, _gib),
        _row("KV tokens", predicted_tokens, seen["kv_tokens"], KV_REL_TOL, tokens),
    ]
    if not eff.get("enforce_eager"):
        rows.append(
            _row("CUDA graphs (budget)", graphs, seen["cudagraph"], CUDAGRAPH_REL_TOL, _gib)
        )
        if seen["cudagraph_actual"] is not None:
            rows.append(Row("CUDA graphs (captured)", "-", _gib(seen["cudagraph_actual"]), None))
    return rows


def settings(run: ChildRun) -> dict[str, Any]:
    """The engine's resolved settings when it started; else the arguments as vLLM's own parser
    read them (a run that failed before its engine existed)."""
    return run.result.get("effective") or run.args_info.get("engine_kwargs") or {}


def plan_for(report: CheckResult, run: ChildRun) -> tuple[Any, Any] | None:
    """servecheck's plan and layout for the run's settings on the target GPU, or None."""
    if report.target.kind != "gpu":
        return None
    from servecheck.errors import InputError
    from servecheck.hardware.gpus import find_gpu
    from servecheck.plan.planner import make_plan

    eff = settings(run)
    try:
        row = find_gpu(report.target.name)
    except InputError:
        return None
    tp = int(eff.get("tensor_parallel_size") or 1)
    pp = int(eff.get("pipeline_parallel_size") or 1)
    total = run.env_info.get("gpu_total_bytes")  # what CUDA reported on this machine
    try:
        plan = make_plan(report, row, tp * pp, 1, options_from(eff), cuda_total=total)
    except (InputError, ValueError, TypeError):
        return None
    for lp in plan.layouts:
        if lp.layout.tp == tp and lp.layout.pp == pp:
            return plan, lp
    return None


def predicted_findings(report: CheckResult, layout: Any) -> tuple[Finding, ...]:
    """The report's findings with its default-settings plan findings replaced by those of the
    plan for the run's settings (as tests/test_gpu_truth.py predicts)."""
    if layout is None:
        return report.findings
    default = {id(f) for f in (report.plan.findings if report.plan else ())}
    kept = tuple(f for f in report.findings if id(f) not in default)
    return tuple(sorted((*kept, *layout[0].findings), key=lambda f: (f.severity.rank, f.code)))
