"""One layout's memory plan: vLLM's budget per GPU, KV capacity, and whether it starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from servecheck.findings.registry import Finding, Severity
from servecheck.findings.rules import memory as rules
from servecheck.model.config import ModelConfig
from servecheck.plan.config import GIB, Era, ServeOptions, requested_bytes, table
from servecheck.plan.kv_cache import Capacity, KvSpec, capacity, longest_len, needed_bytes
from servecheck.plan.layouts import Layout
from servecheck.plan.overhead import Overheads
from servecheck.plan.weights import StageWeights
from servecheck.versions import Release, in_effect

STATUS_ORDER = ("fits", "tight", "graphs", "context", "no-kv", "weights", "startup", "invalid")


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


@dataclass(frozen=True)
class StagePlan:
    """One GPU of one pipeline stage."""

    stage: int
    weights: StageWeights
    overheads: Overheads
    available_kv: int
    kv_bytes_per_token: int
    capacity: Capacity
    needed: int  # KV bytes one max_model_len request needs on this stage
    longest: int  # longest max_model_len that fits this stage


@dataclass(frozen=True)
class LayoutPlan:
    layout: Layout
    problems: tuple[Finding, ...]
    total: int  # CUDA-visible bytes of one GPU
    utilization: float
    requested: int
    max_model_len: int
    kv: KvSpec
    stages: tuple[StagePlan, ...]
    status: str
    findings: tuple[Finding, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return not any(p.severity == Severity.ERROR for p in self.problems)

    @property
    def fits(self) -> bool:
        return self.status in ("fits", "tight")

    @property
    def worst(self) -> StagePlan:
        """The stage that limits the plan (fewest KV blocks, else most weights)."""
        return min(self.stages, key=lambda s: (s.capacity.num_blocks, -s.weights.total))

    @property
    def weights_per_gpu(self) -> int:
        return max(s.weights.total for s in self.stages)

    @property
    def kv_tokens(self) -> int:
        return min(s.capacity.tokens for s in self.stages) if self.stages else 0

    @property
    def concurrency(self) -> float:
        return min(s.capacity.concurrency for s in self.stages) if self.stages else 0.0

    @property
    def longest(self) -> int:
        return min(s.longest for s in self.stages) if self.stages else 0

    @property
    def available_kv(self) -> int:
        return min(s.available_kv for s in self.stages)

    def concurrency_at(self, length: int, era: Era, in_flight: int) -> float:
        """Requests of `length` tokens the KV cache holds at once (vLLM's max concurrency)."""
        if length <= 0 or not self.stages:
            return 0.0
        return min(
            capacity(
                self.kv.stages[s.stage], s.available_kv, length, self.kv.block_size, era, in_flight
            ).concurrency
            for s in self.stages
        )


def plan_layout(
    cfg: ModelConfig,
    layout: Layout,
    problems: list[Finding],
    stage_weights: tuple[StageWeights, ...],
    stage_overheads: list[Overheads],
    kv: KvSpec,
    *,
    total: int,
    era: Era,
    options: ServeOptions,
    max_model_len: int,
    batched_tokens: int,
    gpu_name: str,
    ver: str,
) -> LayoutPlan:
    util = options.gpu_memory_utilization or era.gpu_memory_utilization
    requested = requested_bytes(total, util)
    stages = []
    for sw, ov in zip(stage_weights, stage_overheads, strict=True):
        layers = kv.stages[sw.stage]
        available = requested - sw.total - ov.in_budget
        if options.kv_cache_memory_bytes:
            # vLLM 0.33 v1/worker/gpu_worker.py determine_available_memory: the given size,
            # memory profiling and gpu_memory_utilization bypassed
            available = options.kv_cache_memory_bytes
        cap = capacity(layers, available, max_model_len, kv.block_size, era, batched_tokens)
        needed = needed_bytes(layers, max_model_len, kv.block_size, batched_tokens)
        usable = available - (cap.bytes_per_block if era.null_block_in_check else 0)
        longest = longest_len(layers, usable, kv.block_size, era, batched_tokens, max_model_len)
        stages.append(
            StagePlan(
                stage=sw.stage,
                weights=sw,
                overheads=ov,
                available_kv=available,
                kv_bytes_per_token=kv.bytes_per_token(sw.stage),
                capacity=cap,
                needed=needed,
                longest=longest,
            )
        )
    plan = LayoutPlan(
        layout=layout,
        problems=tuple(problems),
        total=total,
        utilization=util,
        requested=requested,
        max_model_len=max_model_len,
        kv=kv,
        stages=tuple(stages),
        status="fits",
    )
    status, findings = _judge(plan, cfg, era, gpu_name, ver, options)
    return LayoutPlan(**{**plan.__dict__, "status": status, "findings": tuple(findings)})


def _judge(
    plan: LayoutPlan, cfg: ModelConfig, era: Era, gpu_name: str, ver: str, options: ServeOptions
) -> tuple[str, list[Finding]]:
    lay = plan.layout.label
    if not plan.valid:
        return "invalid", []
    worst_start = max(s.overheads.startup_used for s in plan.stages)
    free_at_start = plan.total - worst_start
    if era.startup_check and plan.requested > free_at_start:
        max_util = int(free_at_start / plan.total * 100) / 100
        return "startup", [
            rules.FreeMemoryBelowUtilization.make(
                [lay],
                layout=lay,
                util=plan.utilization,
                requested=gib(plan.requested),
                free=gib(free_at_start),
                max_util=f"{max_util:.2f}",
                ver=ver,
                vllm_text=(
                    f"Free memory on device cuda:0 ({free_at_start / GIB:.2f}/"
                    f"{plan.total / GIB:.2f} GiB) on startup is less than desired GPU memory "
                    f"utilization ({plan.utilization}, {plan.requested / GIB:.2f} GiB). Decrease "
                    "GPU memory utilization or reduce GPU memory used by other processes."
                ),
            )
        ]
    heavy = max(plan.stages, key=lambda s: s.weights.total)
    if heavy.weights.total > free_at_start:
        return "weights", [
            rules.WeightsDoNotFit.make(
                [lay],
                layout=lay,
                weights=gib(heavy.weights.total),
                usable=gib(free_at_start),
                gpu=gpu_name,
                total=gib(plan.total),
                suggestion=_more_gpus_hint(plan),
                ver=ver,
                vllm_text=(
                    "Failed to load model - not enough GPU memory. Try lowering "
                    "--gpu-memory-utilization to free memory for weights, increasing "
                    "--tensor-parallel-size, or using --quantization. ... "
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ..."
                ),
            )
        ]
    if options.kv_cache_memory_bytes:
        over = _fixed_kv_overflow(plan, ver)
        if over is not None:
            return "no-kv", [over]
    worst = min(plan.stages, key=lambda s: s.available_kv)
    if worst.available_kv <= 0:
        return "no-kv", [
            rules.NoKvCacheMemory.make(
                [lay],
                layout=lay,
                available=gib(worst.available_kv),
                breakdown=_breakdown(plan, worst),
                suggestion=_no_kv_hint(plan, worst),
                ver=ver,
                vllm_text=_no_kv_text(era, ver),
            )
        ]
    if _context_fails(plan, era):
        limiting = min(plan.stages, key=lambda s: s.longest)
        return "context", [
            rules.ContextTooLong.make(
                [lay],
                layout=lay,
                max_len=plan.max_model_len,
                needed=gib(limiting.needed),
                available=gib(limiting.available_kv),
                fits_len=limiting.longest,
                suggestion=(
                    f"Pass --max-model-len {_round_len(limiting.longest)} (or less), or "
                    "--kv-cache-dtype fp8, or use more GPUs."
                ),
                source=_context_source(era, ver),
                ver=ver,
                vllm_text=_context_text(plan, limiting, era, ver),
            )
        ]
    graphs = _graph_room(plan, era, ver)
    if graphs is not None:
        return "graphs", [graphs]
    worst = min(plan.stages, key=lambda s: s.available_kv - s.needed)
    if worst.available_kv - worst.needed < GIB:
        return "tight", [
            rules.TightFit.make(
                [lay],
                layout=lay,
                kv=gib(worst.available_kv),
                concurrency=f"{plan.concurrency:.2f}",
                max_len=plan.max_model_len,
                suggestion="Lower --max-model-len, use --kv-cache-dtype fp8, or add a GPU.",
                ver=ver,
            )
        ]
    return "fits", []


def _fixed_kv_overflow(plan: LayoutPlan, ver: str) -> Finding | None:
    """--kv-cache-memory-bytes: does everything, the fixed KV cache included, fit the GPU?"""

    def need(s: StagePlan) -> int:
        ov = s.overheads
        used = ov.startup_used + s.weights.total + ov.activation + ov.non_torch
        return used + ov.cudagraph + s.available_kv

    worst = max(plan.stages, key=need)
    if need(worst) <= plan.total:
        return None
    lay = plan.layout.label
    return rules.KvCacheBytesDoNotFit.make(
        [lay],
        layout=lay,
        kv=gib(worst.available_kv),
        need=gib(need(worst)),
        total=gib(plan.total),
        fits=gib(max(plan.total - need(worst) + worst.available_kv, 0)),
        ver=ver,
    )


def _graph_room(plan: LayoutPlan, era: Era, ver: str) -> Finding | None:
    """Before 0.21 graphs are captured outside the budget: is there room left for them?"""
    if era.cudagraph_in_budget:
        return None
    s = max(plan.stages, key=lambda st: st.overheads.cudagraph)
    room = plan.total - plan.requested - s.overheads.startup_used
    if s.overheads.cudagraph <= room:
        return None
    need = plan.requested - (s.overheads.cudagraph - room) - 256 * 2**20
    max_util = max(int(need / plan.total * 100) / 100, 0.0)
    return rules.CudaGraphCaptureOom.make(
        [plan.layout.label],
        layout=plan.layout.label,
        graphs=gib(s.overheads.cudagraph),
        room=gib(max(room, 0)),
        util=plan.utilization,
        max_util=f"{max_util:.2f}",
        ver=ver,
    )


def _context_fails(plan: LayoutPlan, era: Era) -> bool:
    for s in plan.stages:
        if era.v0:
            if plan.max_model_len > s.capacity.tokens:
                return True
            continue
        usable = s.available_kv - (s.capacity.bytes_per_block if era.null_block_in_check else 0)
        if s.needed > usable:
            return True
    return False


def _round_len(n: int) -> int:
    return n // 1024 * 1024 if n >= 2048 else n


def _breakdown(plan: LayoutPlan, s: StagePlan) -> str:
    ov = s.overheads
    parts = [
        f"{plan.utilization:g} x {gib(plan.total)} = {gib(plan.requested)}",
        f"weights {gib(s.weights.total)}",
        f"activations {gib(ov.activation)}",
        f"non-torch {gib(ov.non_torch)}",
    ]
    if ov.cudagraph_in_budget:
        parts.append(f"CUDA graphs {gib(ov.cudagraph)}")
    return "; ".join(parts)


def _more_gpus_hint(plan: LayoutPlan) -> str:
    need = plan.weights_per_gpu * plan.layout.world
    per_gpu = plan.total * 0.9
    n = 1
    while need / n > per_gpu and n < 64:
        n *= 2
    return (
        f"Use more GPUs: the weights alone need about {n} of these GPUs "
        "(--tensor-parallel-size, --pipeline-parallel-size across nodes), or a smaller "
        "quantization."
    )


def _no_kv_hint(plan: LayoutPlan, s: StagePlan) -> str:
    short = -s.available_kv
    room = int((plan.total - s.overheads.startup_used) / plan.total * 100) / 100
    need_util = (plan.requested + short + GIB) / plan.total
    if need_util <= room:
        return (
            f"Raise --gpu-memory-utilization to {need_util:.2f} (at most {room:.2f} is free), or "
            "lower --max-num-seqs / --max-num-batched-tokens, or use more GPUs."
        )
    return "Use more GPUs (tensor or pipeline parallelism) or a smaller quantization."


def _no_kv_text(era: Era, ver: str) -> str:
    if era.v0:
        return (
            "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
            "when initializing the engine."
        )
    return _kv_error("no_memory", ver).format()


def _context_source(era: Era, ver: str) -> str:
    if era.v0:
        return "vLLM 0.6 worker/worker.py raise_if_cache_size_invalid"
    return f"vLLM {ver} {_kv_error('source', ver)}"


def _context_text(plan: LayoutPlan, s: StagePlan, era: Era, ver: str) -> str:
    if era.v0:
        return (
            f"The model's max seq len ({plan.max_model_len}) is larger than the maximum number "
            f"of tokens that can be stored in KV cache ({s.capacity.tokens}). Try increasing "
            "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
        )
    estimate = (
        f"Based on the available memory, the estimated maximum model length is {s.longest}."
        if s.longest > 0
        else ""
    )
    needed, available = s.needed / GIB, s.available_kv / GIB
    return _kv_error("too_short", ver).format(
        max_model_len=plan.max_model_len,
        needed=needed,
        available=available,
        needed_rounded=round(needed, 2),
        available_rounded=round(available, 2),
        estimate=estimate,
        estimate_space=estimate + " " if estimate else "",
    )


def _kv_error(kind: str, ver: str) -> str:
    """vLLM's KV-cache start-up check text (memory.toml [kv_cache_check]) in release ``ver``."""
    return in_effect(table()["kv_cache_check"][kind]["from"], Release.parse(ver))
