"""The memory and parallelism plan for one checkpoint on N GPUs of one kind."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from servecheck.check_result import CheckResult
from servecheck.core import Target
from servecheck.findings.registry import Finding
from servecheck.findings.rules import launch as lrules
from servecheck.findings.rules import memory as mrules
from servecheck.hardware.gpus import Gpu
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Inventory
from servecheck.plan.config import (
    GIB,
    BatchDefaults,
    Era,
    ServeOptions,
    batch_defaults,
    cuda_total_bytes,
    default_block_size,
    era_for,
    table,
)
from servecheck.plan.kv_cache import kv_spec, resolve_kv_dtype
from servecheck.plan.layouts import (
    Layout,
    LayoutContext,
    check_layout,
    enumerate_layouts,
    moe_fp8_tp_table,
)
from servecheck.plan.max_len import MaxLen, derive_max_len
from servecheck.plan.memory import LayoutPlan, gib, plan_layout
from servecheck.plan.overhead import ProfileRun, model_runner, overheads
from servecheck.plan.recommend import Command, build_command, choose_layout
from servecheck.plan.verdict import verdict_findings
from servecheck.plan.weights import model_dtype_bytes, plan_weights
from servecheck.quant.spec import QuantSpec
from servecheck.versions import VllmVersion


@dataclass(frozen=True)
class Plan:
    model: str
    gpu: Gpu
    gpus_per_node: int
    nodes: int
    options: ServeOptions
    era: Era
    version: str
    cuda_total: int
    cuda_total_source: str
    max_model_len: int
    max_len_derived: int
    max_len_key: str
    kv_dtype: str
    block_size: int
    batch: BatchDefaults
    layouts: tuple[LayoutPlan, ...]
    recommended: LayoutPlan | None
    recommended_len: int | None  # max_model_len put in the command (shortened if needed)
    command: Command | None
    findings: tuple[Finding, ...]
    moe_tp_table: tuple[dict, ...] = ()
    estimated: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    max_len: MaxLen | None = None  # how vLLM derives the maximum context
    runner_up: LayoutPlan | None = None  # the layout the recommendation was preferred to
    choice: str = ""  # one line: why the recommended layout over the runner-up
    exact: bool = False  # the plan of one given launch (not a search over layouts)
    alternatives: tuple[Any, ...] = ()  # plan.alternatives.Alternative, when it does not fit

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def fits(self) -> bool:
        return self.recommended is not None


def checkpoint_kv_dtype(quant: QuantSpec, version: VllmVersion) -> str | None:
    """The KV dtype `--kv-cache-dtype auto` takes from the checkpoint (vLLM 0.24+)."""
    if not version.feature("kv_cache_dtype_auto_from_checkpoint"):
        return None
    scheme = quant.ct.kv_cache_scheme if quant.ct else None
    if isinstance(scheme, dict) and scheme.get("num_bits") == 8 and scheme.get("type") == "float":
        return "fp8"
    raw = quant.raw or {}
    inner = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else raw
    algo = str(inner.get("kv_cache_quant_algo") or "").upper()
    if algo == "FP8":
        return "fp8"
    return None


def make_plan(
    report: CheckResult,
    gpu: Gpu,
    gpus_per_node: int,
    nodes: int = 1,
    options: ServeOptions | None = None,
    *,
    model_arg: str | None = None,
    only: list[Layout] | None = None,
    cuda_total: int | None = None,
    exact: bool = False,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Plan:
    """Plan `report` (a CheckResult) on `gpus_per_node` x `nodes` GPUs of kind `gpu`.

    `only` restricts the layouts; with `exact` (one given launch) the plan is that launch as
    written: no fallback to another utilization or a shorter context."""
    options = options or ServeOptions()
    cfg: ModelConfig = report.model
    version = report.version
    ver = version.effective
    era = era_for(version)
    capability = gpu.capability
    if cuda_total is not None:
        total, total_source = cuda_total, "given"
    else:
        total, total_source = cuda_total_bytes(gpu)
    dtype_bytes = model_dtype_bytes(cfg)
    launch_env = dict(env or {})
    if options.allow_long_max_model_len:
        launch_env.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    ml = derive_max_len(
        cfg.raw,
        version.requested,
        requested=options.max_model_len,
        env=launch_env,
        disable_sliding_window=options.disable_sliding_window,
        sliding_window=cfg.sliding_window,
    )
    max_len = ml.value
    findings: list[Finding] = _max_len_findings(ml, ver)
    batch = batch_defaults(version, gpu.name, capability, total, max_len)
    batched = options.max_num_batched_tokens or batch.max_num_batched_tokens
    seqs = options.max_num_seqs or batch.max_num_seqs
    kv_dtype = resolve_kv_dtype(
        options.kv_cache_dtype, dtype_bytes, checkpoint_kv_dtype(report.quant, version)
    )
    block = options.block_size or default_block_size(cfg.is_mla, capability)
    ctx = LayoutContext(
        cfg=cfg,
        inventory=report.inventory,
        resolution=report.resolution,
        quant=report.quant,
        version=version,
        capability=capability,
    )
    experts = moe_experts_class(report, gpu) if cfg.is_moe else None
    candidates = only or enumerate_layouts(gpus_per_node, nodes, cfg.is_moe)
    if options.enable_expert_parallel is not None and only is None:
        candidates = [
            c for c in candidates if c.ep == options.enable_expert_parallel or c.ep_size == 1
        ]
    offload = round(options.cpu_offload_gb * GIB)
    offload_ignored = bool(
        offload
        and not era.v0
        and model_runner(cfg, era, version) == "V2"
        and not version.feature("v2_runner_cpu_offload")
        and launch_env.get("VLLM_USE_V2_MODEL_RUNNER") != "0"
    )
    if offload_ignored:
        offload = 0
    prepared = []
    for layout in candidates:
        problems = check_layout(layout, ctx)
        weights = plan_weights(
            cfg,
            report.inventory,
            report.resolution,
            dict(report.module_bytes),
            layout,
            capability=capability,
            speculative=options.speculative,
            inferred=report.checkpoint.config_only,
            moe_backend=options.moe_backend,
            cpu_offload_bytes=offload,
            skip_towers=options.text_only and bool(report.version.feature("text_only_skips_tower")),
        )
        kv = kv_spec(
            cfg,
            report.inventory,
            layout,
            kv_dtype,
            block,
            speculative=options.speculative,
            chunked_hybrid=bool(report.version.feature("chunked_local_hybrid_kv")),
        )
        ovs = [
            overheads(
                cfg,
                layout,
                era,
                ProfileRun(
                    batched_tokens=batched,
                    num_seqs=seqs,
                    dtype_bytes=dtype_bytes,
                    last_stage=s.stage == layout.pp - 1,
                    enforce_eager=options.enforce_eager,
                    layers=s.layers[1] - s.layers[0],
                    moe_layers=_moe_layers(report.inventory, s.layers) if cfg.is_moe else 0,
                    capability=capability,
                    moe_experts=experts,
                    sampler=options.sampler,
                ),
                version,
            )
            for s in weights.stages
        ]
        prepared.append((layout, problems, weights.stages, ovs, kv))

    def plan_all(opts: ServeOptions, length: int = max_len) -> list[LayoutPlan]:
        return [
            plan_layout(
                cfg,
                layout,
                problems,
                stages,
                ovs,
                kv,
                total=total,
                era=era,
                options=opts,
                max_model_len=length,
                batched_tokens=batched,
                gpu_name=gpu.name,
                ver=ver,
            )
            for layout, problems, stages, ovs, kv in prepared
        ]

    plans = plan_all(options)
    if ml.auto:
        # vLLM 0.33 v1/core/kv_cache_planning.py _auto_fit_max_model_len: -1/auto shortens
        # max_model_len to what every worker's KV cache holds
        plans = [_auto_fit(p, plan_all, options) for p in plans]
    total_gpus = gpus_per_node * nodes
    nvlink = bool(getattr(gpu, "nvlink", False))
    choice = choose_layout(plans, total_gpus, cfg, nvlink)
    best = choice.best if choice else None
    rec_len: int | None = options.max_model_len if not ml.auto else None
    if best is not None and ml.auto:
        rec_len = best.max_model_len
    rec_util = options.gpu_memory_utilization
    notes: list[str] = []
    retry = float(table()["recommend"]["retry_utilization"])
    if best is None and not exact and rec_util is None and retry > era.gpu_memory_utilization:
        # What vLLM's own message suggests first: a larger share of the GPU.
        choice = choose_layout(
            plan_all(replace(options, gpu_memory_utilization=retry)), total_gpus, cfg, nvlink
        )
        best = choice.best if choice else None
        if best is not None:
            rec_util = retry
            notes.append(
                f"fits only with --gpu-memory-utilization {retry:g} (default "
                f"{era.gpu_memory_utilization:g})"
            )
    if best is None and not exact and not options.max_model_len:
        # Nothing serves the model's full context: recommend the layout that serves the
        # longest one, with --max-model-len set to it.
        shorter = [p for p in plans if p.status == "context" and p.longest >= 1024]
        if shorter:
            best = max(shorter, key=lambda p: (p.longest, -p.layout.pp, not p.layout.ep))
            rec_len = best.longest // 1024 * 1024
            choice = None
    command = None
    if best is not None:
        run_env = {**_env_from_findings(report), **launch_env}
        command = build_command(
            model_arg or report.location,
            best,
            max_model_len=rec_len,
            utilization=rec_util,
            kv_cache_dtype=options.kv_cache_dtype,
            env=run_env,
            speculative_tokens=cfg.num_nextn_predict_layers if options.speculative else None,
            extra=extra_args or option_args(options),
        )
    findings += verdict_findings(plans, best, rec_len, max_len, gpu, total_gpus, command, ver)
    if offload_ignored:
        shown = plans[0] if plans and plans[0].stages else None
        findings.append(
            mrules.CpuOffloadIgnored.make(
                ["--cpu-offload-gb"],
                gb=f"{options.cpu_offload_gb:g}",
                arch=cfg.architecture,
                weights=gib(shown.weights_per_gpu) if shown else "the weights",
                ver=ver,
            )
        )
    elif best is not None and options.cpu_offload_gb:
        findings.append(offload_finding(best, ver, gpus=total_gpus))
    estimated = ["activation peak", "non-torch memory"]
    if any(ov.cudagraph_in_budget for _, _, _, stage_ovs, _ in prepared for ov in stage_ovs):
        estimated.append("CUDA-graph estimate")
    if report.checkpoint.config_only and report.quant.method:
        estimated.append("quantized weight bytes (config only)")
    findings.append(mrules.PlanEstimated.make(terms=", ".join(estimated), ver=ver))
    return Plan(
        model=model_arg or report.location,
        gpu=gpu,
        gpus_per_node=gpus_per_node,
        nodes=nodes,
        options=options,
        era=era,
        version=ver,
        cuda_total=total,
        cuda_total_source=total_source,
        max_model_len=max_len,
        max_len_derived=ml.derived,
        max_len_key=ml.key or "default",
        kv_dtype=kv_dtype,
        block_size=block,
        batch=BatchDefaults(batched, seqs, batch.source),
        layouts=tuple(plans),
        recommended=best,
        recommended_len=rec_len,
        command=command,
        findings=tuple(findings),
        moe_tp_table=tuple(moe_fp8_tp_table(ctx)),
        estimated=tuple(estimated),
        notes=tuple(notes),
        max_len=ml,
        runner_up=choice.runner_up if choice and choice.best is best else None,
        choice=choice.why if choice and choice.best is best and not exact else "",
        exact=exact,
    )


def option_args(options: ServeOptions) -> tuple[str, ...]:
    """The serving options other than layout, length, utilization and KV dtype, as arguments."""
    out: list[str] = []
    if options.max_num_seqs:
        out += ["--max-num-seqs", str(options.max_num_seqs)]
    if options.max_num_batched_tokens:
        out += ["--max-num-batched-tokens", str(options.max_num_batched_tokens)]
    if options.block_size:
        out += ["--block-size", str(options.block_size)]
    if options.enforce_eager:
        out.append("--enforce-eager")
    if options.cpu_offload_gb:
        out += ["--cpu-offload-gb", f"{options.cpu_offload_gb:g}"]
    if options.kv_cache_memory_bytes:
        out += ["--kv-cache-memory-bytes", str(options.kv_cache_memory_bytes)]
    return tuple(out)


def _auto_fit(p: LayoutPlan, plan_all, options: ServeOptions) -> LayoutPlan:
    if p.status != "context" or p.longest <= 0:
        return p
    shorter = plan_all(options, p.longest)
    return next(q for q in shorter if q.layout == p.layout)


def _max_len_findings(ml: MaxLen, ver: str) -> list[Finding]:
    out = [
        lrules.DerivedMaxLen.make(
            ["max_model_len"],
            value="auto (fit to memory)" if ml.auto else f"{ml.value:,}",
            derived=f"{ml.derived:,}",
            why=ml.why or "vLLM's default",
            ver=ver,
            evidence={"derived": ml.derived, "key": ml.key, "steps": list(ml.steps)},
        )
    ]
    if ml.over_limit and ml.allowed_by_env:
        out.append(
            lrules.LongMaxLenAllowed.make(
                ["max_model_len"],
                max_len=ml.value,
                key=ml.key,
                derived=ml.derived,
                vllm_text=ml.vllm_text,
                ver=ver,
            )
        )
    elif ml.over_limit:
        out.append(
            mrules.MaxLenAboveModel.make(
                ["max_model_len"],
                max_len=ml.value,
                key=ml.key,
                derived=ml.derived,
                ver=ver,
                vllm_text=ml.vllm_text,
            )
        )
    return out


def offload_finding(best: LayoutPlan, ver: str, gpus: int) -> Finding:
    """What --cpu-offload-gb costs: bytes read over PCIe on every forward pass."""
    offloaded = max(s.weights.offloaded for s in best.stages)
    pcie = float(table()["links"]["pcie_gbs"])
    seconds = offloaded / (pcie * 1e9)
    minimum = minimum_offload(best)
    return mrules.CpuOffloadCost.make(
        [best.layout.label],
        layout=best.layout.label,
        offloaded=gib(offloaded),
        host=gib(offloaded * gpus),
        step=f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms",
        pcie=f"{pcie:g} GB/s",
        minimum=minimum,
        ver=ver,
        evidence={"offloaded_bytes": offloaded, "seconds_per_step": seconds},
    )


def minimum_offload(best: LayoutPlan) -> str:
    """The least --cpu-offload-gb with the same margin: what is offloaded beyond the KV cache
    the plan keeps (whole GiB, rounded up)."""
    spare = min(s.available_kv - s.needed for s in best.stages)
    offloaded = max(s.weights.offloaded for s in best.stages)
    least = max(offloaded - max(spare, 0), 0)
    return f"--cpu-offload-gb {-(-least // GIB)}"


def _env_from_findings(report: CheckResult) -> dict[str, str]:
    """Environment variables the launch needs: the VLLM_*/NCCL_* variables the kernel
    prediction assumed (--kernel-env), and any a rule calls for (finding.evidence['env'])."""
    env: dict[str, str] = {}
    assumed = report.kernels.env.env if report.kernels else {}
    for name, value in assumed.items():
        if str(name).startswith(("VLLM_", "NCCL_", "CUDA_")):
            env[str(name)] = str(value)
    for f in report.findings:
        extra = f.evidence.get("env") if isinstance(f.evidence, dict) else None
        if isinstance(extra, dict):
            env.update({str(k): str(v) for k, v in extra.items()})
    return env


def _moe_layers(inventory: Inventory, layers: tuple[int, int]) -> int | None:
    """Fused-MoE layers among the decoder layers [start, end) of a pipeline stage (None when
    the inventory has no experts modules to count: then every layer is taken as MoE)."""
    start, end = layers
    experts = [m for m in inventory.modules if m.kind == "moe.experts" and not m.mtp]
    if not experts:
        return None
    return len({m.layer for m in experts if m.layer is not None and start <= m.layer < end})


def moe_experts_class(report: CheckResult, gpu: Gpu) -> str | None:
    """vLLM's experts class for the model's fused-MoE layers on `gpu` (sizes the fused-MoE
    workspace of the profile run): the check's kernel selection when it was made for this GPU,
    else the MoE backend selection run for it here."""
    kernels = report.kernels
    if kernels is None or kernels.device.capability != gpu.capability:
        from servecheck.hardware.env import resolve_env
        from servecheck.hardware.plan_kernels import select_kernels

        target = Target(name=gpu.name, kind="gpu", capability=gpu.capability)
        release = report.version.release
        kernels = select_kernels(
            report.inventory,
            report.resolution,
            target,
            release,
            resolve_env(release),
            model=report.model,
            quant=report.quant,
        )
    for m in kernels.modules if kernels is not None else ():
        if m.kind == "moe.experts" and m.choice.ok:
            return m.choice.experts
    return None
