"""The memory and parallelism plan for one checkpoint on N GPUs of one kind."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from servecheck.core import CheckReport, Target
from servecheck.findings.registry import Finding, Severity
from servecheck.findings.rules import memory as mrules
from servecheck.findings.rules import parallel as prules
from servecheck.hardware.gpus import Gpu
from servecheck.model.config import ModelConfig
from servecheck.plan.config import (
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
from servecheck.plan.memory import LayoutPlan, gib, plan_layout
from servecheck.plan.overhead import ProfileRun, overheads
from servecheck.plan.recommend import Command, build_command, choose, closest
from servecheck.plan.weights import model_dtype_bytes, plan_weights


@dataclass(frozen=True)
class Plan:
    model: str
    gpu: Any  # hardware.gpus.Gpu
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

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def fits(self) -> bool:
        return self.recommended is not None


def derived_max_len(cfg: ModelConfig) -> tuple[int, str]:
    """vLLM 0.33 config/model.py _get_and_verify_max_len: the config's length, times the RoPE
    factor except for the types whose max_position_embeddings is already scaled."""
    raw = cfg.raw
    for key in (
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "seq_length",
        "max_sequence_length",
        "max_seq_length",
        "seq_len",
    ):
        if isinstance(raw.get(key), int):
            length, name = int(raw[key]), key
            break
    else:
        return 2048, "default"
    scaling = raw.get("rope_scaling") or raw.get("rope_parameters")
    if isinstance(scaling, dict):
        rope_type = scaling.get("rope_type", scaling.get("type"))
        factor = scaling.get("factor")
        if rope_type not in (
            None,
            "default",
            "su",
            "longrope",
            "llama3",
            "yarn",
            "deepseek_yarn",
            "deepseek_llama_scaling",
        ) and isinstance(factor, (int, float)):
            length = int(length * factor)
    return length, name


def checkpoint_kv_dtype(quant: Any, version: Any) -> str | None:
    """The KV dtype `--kv-cache-dtype auto` takes from the checkpoint (vLLM 0.24+)."""
    if not version.feature("kv_cache_dtype_auto_from_checkpoint"):
        return None
    ct = getattr(quant, "ct", None)
    scheme = getattr(ct, "kv_cache_scheme", None) if ct else None
    if isinstance(scheme, dict) and scheme.get("num_bits") == 8 and scheme.get("type") == "float":
        return "fp8"
    raw = getattr(quant, "raw", None) or {}
    inner = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else raw
    algo = str(inner.get("kv_cache_quant_algo") or "").upper()
    if algo == "FP8":
        return "fp8"
    return None


def make_plan(
    report: CheckReport,
    gpu: Gpu,
    gpus_per_node: int,
    nodes: int = 1,
    options: ServeOptions | None = None,
    *,
    model_arg: str | None = None,
    only: list[Layout] | None = None,
    cuda_total: int | None = None,
) -> Plan:
    """Plan `report` (an api.CheckReport) on `gpus_per_node` x `nodes` GPUs of kind `gpu`."""
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
    derived, key = derived_max_len(cfg)
    max_len = options.max_model_len or derived
    findings: list[Finding] = []
    if options.max_model_len and options.max_model_len > derived:
        findings.append(
            mrules.MaxLenAboveModel.make(
                ["max_model_len"],
                max_len=options.max_model_len,
                key=key,
                derived=derived,
                ver=ver,
                vllm_text=(
                    f"User-specified max_model_len ({options.max_model_len}) is greater than the "
                    f"derived max_model_len ({key}={derived} or model_max_length=None in model's "
                    "config.json). To allow overriding this maximum, set the env var "
                    "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. ..."
                ),
            )
        )
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
        candidates = [c for c in candidates if c.ep == options.enable_expert_parallel or c.tp == 1]
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
        )
        kv = kv_spec(
            cfg, report.inventory, layout, kv_dtype, block, speculative=options.speculative
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

    def plan_all(opts: ServeOptions) -> list[LayoutPlan]:
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
                max_model_len=max_len,
                batched_tokens=batched,
                gpu_name=gpu.name,
                ver=ver,
            )
            for layout, problems, stages, ovs, kv in prepared
        ]

    plans = plan_all(options)
    total_gpus = gpus_per_node * nodes
    best = choose(plans, total_gpus)
    rec_len: int | None = options.max_model_len
    rec_util = options.gpu_memory_utilization
    notes: list[str] = []
    retry = float(table()["recommend"]["retry_utilization"])
    if best is None and rec_util is None and retry > era.gpu_memory_utilization:
        # What vLLM's own message suggests first: a larger share of the GPU.
        best = choose(plan_all(replace(options, gpu_memory_utilization=retry)), total_gpus)
        if best is not None:
            rec_util = retry
            notes.append(
                f"fits only with --gpu-memory-utilization {retry:g} (default "
                f"{era.gpu_memory_utilization:g})"
            )
    if best is None and not options.max_model_len:
        # Nothing serves the model's full context: recommend the layout that serves the
        # longest one, with --max-model-len set to it.
        shorter = [p for p in plans if p.status == "context" and p.longest >= 1024]
        if shorter:
            best = max(shorter, key=lambda p: (p.longest, -p.layout.pp, not p.layout.ep))
            rec_len = best.longest // 1024 * 1024
    command = None
    if best is not None:
        env = _env_from_findings(report)
        command = build_command(
            model_arg or report.location,
            best,
            max_model_len=rec_len,
            utilization=rec_util,
            kv_cache_dtype=options.kv_cache_dtype,
            env=env,
            speculative_tokens=cfg.num_nextn_predict_layers if options.speculative else None,
        )
    findings += _verdict_findings(plans, best, rec_len, max_len, gpu, total_gpus, command, ver)
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
        max_len_derived=derived,
        max_len_key=key,
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
    )


def _env_from_findings(report: Any) -> dict[str, str]:
    """Environment variables the launch needs: the VLLM_*/NCCL_* variables the kernel
    prediction assumed (--kernel-env), and any a rule calls for (finding.evidence['env'])."""
    env: dict[str, str] = {}
    kernels = getattr(report, "kernels", None)
    assumed = getattr(getattr(kernels, "env", None), "env", None) or {}
    for name, value in assumed.items():
        if str(name).startswith(("VLLM_", "NCCL_", "CUDA_")):
            env[str(name)] = str(value)
    for f in getattr(report, "findings", ()):
        extra = f.evidence.get("env") if isinstance(f.evidence, dict) else None
        if isinstance(extra, dict):
            env.update({str(k): str(v) for k, v in extra.items()})
    return env


def _verdict_findings(
    plans: list[LayoutPlan],
    best: LayoutPlan | None,
    rec_len: int | None,
    max_len: int,
    gpu: Any,
    total_gpus: int,
    command: Command | None,
    ver: str,
) -> list[Finding]:
    gpus = f"{total_gpus}x {gpu.name}"
    out: list[Finding] = []
    valid = [p for p in plans if p.valid]
    if not valid:
        errors = sorted(
            {p.code for plan in plans for p in plan.problems if p.severity == Severity.ERROR}
        )
        out.append(
            prules.NoValidLayout.make(
                gpus=total_gpus, detail=", ".join(errors) or "no layout", ver=ver
            )
        )
        for plan in plans:
            out += [p for p in plan.problems if p.severity == Severity.ERROR]
        return _dedupe(out)
    if best is not None and best.fits:
        length = max_len
        out.append(_fits_finding(best, gpus, length, command, ver))
        out += list(best.findings)  # tight-fit warning, if any
        out += list(best.problems)
        return out
    near = closest(plans)
    if best is not None and rec_len:
        # Fits only with a shorter context: report why the full context fails, and the fix.
        out += list(best.findings)
        out += [p for p in best.problems if p.severity != Severity.ERROR]
        return out
    detail = "no valid layout" if near is None else f"closest: {near.layout.label}, {near.status}"
    out.append(
        mrules.NoLayoutFits.make(
            gpus=gpus,
            closest=detail,
            suggestion=_suggest_more(near, gpu, total_gpus),
            ver=ver,
        )
    )
    if near is not None:
        out += list(near.findings)
    return out


def _fits_finding(
    best: LayoutPlan, gpus: str, length: int, command: Command | None, ver: str
) -> Finding:
    return mrules.Fits.make(
        [best.layout.label],
        layout=best.layout.label,
        gpus=gpus,
        weights=gib(best.weights_per_gpu),
        kv=gib(best.available_kv),
        tokens=f"{best.kv_tokens:,}",
        concurrency=f"{best.concurrency:.2f}",
        max_len=f"{length:,}",
        command=command.serve if command else "",
        ver=ver,
    )


def _suggest_more(near: LayoutPlan | None, gpu: Any, total_gpus: int) -> str:
    if near is None:
        return "Change the GPU count or the checkpoint's format."
    weights_all = near.weights_per_gpu * near.layout.world
    per_gpu = near.total * 0.85
    n = total_gpus
    while weights_all / n > per_gpu and n < 256:
        n *= 2
    if n > total_gpus:
        return (
            f"The weights need about {n} GPUs of {gib(near.total)} ({gib(weights_all)} in "
            "all), or GPUs with more memory, or a smaller quantization."
        )
    return "Lower --max-model-len or --max-num-seqs, or use --kv-cache-dtype fp8."


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        key = (f.code, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _moe_layers(inventory: Any, layers: tuple[int, int]) -> int | None:
    """Fused-MoE layers among the decoder layers [start, end) of a pipeline stage (None when
    the inventory has no experts modules to count: then every layer is taken as MoE)."""
    start, end = layers
    experts = [m for m in inventory.modules if m.kind == "moe.experts" and not m.mtp]
    if not experts:
        return None
    return len({m.layer for m in experts if m.layer is not None and start <= m.layer < end})


def moe_experts_class(report: Any, gpu: Any) -> str | None:
    """vLLM's experts class for the model's fused-MoE layers on `gpu` (sizes the fused-MoE
    workspace of the profile run): the check's kernel selection when it was made for this GPU,
    else the MoE backend selection run for it here."""
    kernels = getattr(report, "kernels", None)
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
