"""When a launch does not fit: changes that make it fit, each planned again before it is shown.

    alternatives(report, gpu, plan, ...)  -> [Alternative], every one re-checked

One change at a time, the launch otherwise as given: weights moved to CPU memory
(--cpu-offload-gb, with what it costs), an FP8 KV cache, the longest context that fits, fewer
concurrent sequences, a larger share of the GPU, more GPUs or nodes of the same kind, and the
GPUs from the table on which the model fits at the same count. Each comes with the
`vllm serve` command of its re-checked plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servecheck.check_result import CheckResult
from servecheck.hardware.gpus import Gpu
from servecheck.plan.config import GIB, ServeOptions, table
from servecheck.plan.layouts import Layout, enumerate_layouts
from servecheck.plan.memory import gib
from servecheck.plan.planner import Plan, make_plan

# The whole check and plan of the same checkpoint on another GPU of the table, `count` of it
# (None when the check fails there): api.gpu_rechecker builds one.
GpuRecheck = Callable[[Gpu, int], "Plan | None"]

MAX_GPUS = 64  # the largest deployment "more GPUs" looks at
OTHER_GPUS_SHOWN = 3


@dataclass(frozen=True)
class Alternative:
    """One change that makes the launch fit, checked by planning it again."""

    kind: str  # cpu-offload | kv-cache-fp8 | shorter-context | fewer-seqs | utilization |
    #            more-gpus | other-gpu
    change: str  # what changes, in the launch's terms
    cost: str  # what it costs or gives up
    command: str  # the ready `vllm serve` command of the re-checked plan
    layout: str
    kv_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def alternatives(
    report: CheckResult,
    gpu: Gpu,
    plan: Plan,
    *,
    model_arg: str,
    env: dict[str, str] | None = None,
    recheck_gpu: GpuRecheck | None = None,
) -> list[Alternative]:
    """Re-checked ways to make `plan` (which does not fit) fit. `recheck_gpu(row, count)` runs
    the whole check for another GPU (its kernels, not only its memory); without it, other GPUs
    are left out."""
    if plan.fits:
        return []
    options = plan.options
    layouts = [p.layout for p in plan.layouts if p.valid]
    if not layouts:
        return []
    layout = _closest(plan).layout

    def replan(opts: ServeOptions, only: list[Layout] | None = None) -> Plan:
        return make_plan(
            report,
            gpu,
            plan.gpus_per_node,
            plan.nodes,
            opts,
            model_arg=model_arg,
            only=only or [layout],
            exact=True,
            env=env,
        )

    out: list[Alternative] = []
    for finder in (_offload, _kv_fp8, _shorter, _fewer_seqs, _utilization):
        alt = finder(plan, options, replan)
        if alt is not None:
            out.append(alt)
    more = _more_gpus(report, gpu, plan, model_arg, env)
    if more is not None:
        out.append(more)
    if recheck_gpu is not None:
        out += _other_gpus(report, gpu, plan, recheck_gpu)
    return out


def _closest(plan: Plan):
    from servecheck.plan.recommend import closest

    return closest(list(plan.layouts)) or plan.layouts[0]


def _alt(kind: str, change: str, cost: str, p: Plan) -> Alternative:
    rec = p.recommended
    return Alternative(
        kind=kind,
        change=change,
        cost=cost,
        command=p.command.text() if p.command else "",
        layout=rec.layout.label if rec else "",
        kv_tokens=rec.kv_tokens * rec.layout.dp if rec else 0,
    )


def _offload(plan: Plan, options: ServeOptions, replan) -> Alternative | None:
    """The least whole GiB of --cpu-offload-gb that fits (binary search, each step planned)."""
    near = _closest(plan)
    if near.status not in ("weights", "no-kv", "context", "startup") or not near.stages:
        return None
    top = int(near.weights_per_gpu // GIB) + 1
    if replan(dataclasses.replace(options, cpu_offload_gb=float(top))).fits is False:
        return None
    lo, hi = 1, top
    while lo < hi:
        mid = (lo + hi) // 2
        if replan(dataclasses.replace(options, cpu_offload_gb=float(mid))).fits:
            hi = mid
        else:
            lo = mid + 1
    fitted = replan(dataclasses.replace(options, cpu_offload_gb=float(lo)))
    best = fitted.recommended
    offloaded = max(s.weights.offloaded for s in best.stages)
    pcie = float(table()["links"]["pcie_gbs"])
    seconds = offloaded / (pcie * 1e9)
    cost = (
        f"{gib(offloaded)} of weights per GPU read over PCIe on every forward pass (about "
        f"{seconds:.2f} s per step at {pcie:g} GB/s); needs {gib(offloaded * plan.total_gpus)} "
        "of pinned host memory"
    )
    return _alt("cpu-offload", f"--cpu-offload-gb {lo}", cost, fitted)


def _kv_fp8(plan: Plan, options: ServeOptions, replan) -> Alternative | None:
    if plan.kv_dtype.startswith("fp8") or _closest(plan).status not in ("context", "no-kv"):
        return None
    p = replan(dataclasses.replace(options, kv_cache_dtype="fp8"))
    if not p.fits:
        return None
    return _alt(
        "kv-cache-fp8",
        "--kv-cache-dtype fp8",
        "KV cache stored in FP8: half the bytes per token, a small accuracy cost",
        p,
    )


def _shorter(plan: Plan, options: ServeOptions, replan) -> Alternative | None:
    near = _closest(plan)
    if near.status != "context" or near.longest < 256:
        return None
    length = near.longest // 1024 * 1024 if near.longest >= 2048 else near.longest
    p = replan(dataclasses.replace(options, max_model_len=length))
    if not p.fits:
        return None
    return _alt(
        "shorter-context",
        f"--max-model-len {length}",
        f"requests up to {length:,} tokens instead of {plan.max_model_len:,}",
        p,
    )


def _fewer_seqs(plan: Plan, options: ServeOptions, replan) -> Alternative | None:
    """A smaller profile run (fewer sequences and batched tokens) when activations crowd out
    the KV cache."""
    if _closest(plan).status != "no-kv":
        return None
    seqs = plan.batch.max_num_seqs
    tokens = plan.batch.max_num_batched_tokens
    while seqs > 1:
        seqs //= 2
        tokens = max(tokens // 2, 2048)
        opts = dataclasses.replace(options, max_num_seqs=seqs, max_num_batched_tokens=tokens)
        p = replan(opts)
        if p.fits:
            return _alt(
                "fewer-seqs",
                f"--max-num-seqs {seqs} --max-num-batched-tokens {tokens}",
                f"at most {seqs} requests at once and {tokens:,} tokens per step",
                p,
            )
    return None


def _utilization(plan: Plan, options: ServeOptions, replan) -> Alternative | None:
    retry = float(table()["recommend"]["retry_utilization"])
    current = options.gpu_memory_utilization or plan.era.gpu_memory_utilization
    if current >= retry or _closest(plan).status not in ("context", "no-kv"):
        return None
    p = replan(dataclasses.replace(options, gpu_memory_utilization=retry))
    if not p.fits:
        return None
    return _alt(
        "utilization",
        f"--gpu-memory-utilization {retry:g}",
        f"vLLM takes {retry:.0%} of each GPU instead of {current:.0%}",
        p,
    )


def _more_gpus(
    report: CheckResult, gpu: Gpu, plan: Plan, model_arg: str, env: dict[str, str] | None
) -> Alternative | None:
    """The fewest GPUs of the same kind on which a layout fits: more in the machine (up to 8,
    or the node's size when larger), then whole nodes of that size."""
    if _closest(plan).status not in ("weights", "no-kv", "context"):
        return None  # more GPUs do not change a start-up or graph-capture failure
    node = max(plan.gpus_per_node, 8)  # a machine holds up to 8 GPUs unless told more
    total = plan.total_gpus
    shapes = [(c, 1) for c in (2, 4, 8) if total < c <= node]
    shapes += [(node, k) for k in range(2, 9) if node * k > total and node * k <= MAX_GPUS]
    options = dataclasses.replace(plan.options, enable_expert_parallel=None)
    moe = bool(getattr(report.model, "is_moe", False))
    for node_gpus, nodes in shapes:
        # the model split over all of them (no replicas): the fewest GPUs that hold it
        only = [
            lay
            for lay in enumerate_layouts(node_gpus, nodes, moe, data_parallel=False)
            if lay.world == node_gpus * nodes
        ]
        p = make_plan(
            report, gpu, node_gpus, nodes, options, model_arg=model_arg, env=env, only=only
        )
        if p.fits:
            count = node_gpus * nodes
            where = f"{nodes} nodes x {node_gpus}" if nodes > 1 else f"{count}"
            extra = count - total
            return _alt(
                "more-gpus",
                f"{where} {gpu.name} GPUs ({p.recommended.layout.label})",
                f"{extra} more GPU{'s' if extra > 1 else ''}",
                p,
            )
    return None


def _other_gpus(
    report: CheckResult, gpu: Gpu, plan: Plan, recheck_gpu: GpuRecheck
) -> list[Alternative]:
    """Table GPUs with more memory on which the model fits at the same count: screened by memory
    on this check, then re-checked whole for the few shown (their own kernels and limits)."""
    from servecheck.hardware.gpus import load_gpus

    count = plan.total_gpus
    layout = _closest(plan).layout
    screened = []
    for row in load_gpus():
        if row.name == gpu.name or row.total_memory_bytes <= gpu.total_memory_bytes:
            continue
        # a quick screen: the same layout and options on this GPU's memory
        p = make_plan(
            report,
            row,
            plan.gpus_per_node,
            plan.nodes,
            plan.options,
            model_arg=plan.model,
            only=[layout],
            exact=True,
        )
        if p.fits:
            screened.append(row)
    screened.sort(key=lambda r: (r.total_memory_bytes, r.name))
    out = []
    for row in screened:
        p = recheck_gpu(row, count)
        if p is None or not p.fits or any(f.severity.value == "error" for f in p.findings):
            continue
        out.append(
            _alt(
                "other-gpu",
                f"{count}x {row.name} ({row.memory_gib:g} GB)",
                f"{p.recommended.layout.label}, KV cache {gib(p.recommended.available_kv)} per GPU",
                p,
            )
        )
        if len(out) == OTHER_GPUS_SHOWN:
            break
    return out
