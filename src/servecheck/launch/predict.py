"""Predict one launch: the checkpoint as the launch changes it, and the plan of exactly that launch.

prepare(ckpt, settings)                 -> the checkpoint with --hf-overrides applied
launch_target(target, settings, ver)    -> the target sized for the launch, findings
plan_launch(report, settings, launch)   -> the report with the launch's own plan
constrain(settings, gpus, nodes, moe)   -> the layouts `plan` may consider under the launch
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any

from servecheck.check_result import CheckResult
from servecheck.core import Target
from servecheck.findings.registry import Finding
from servecheck.findings.rules import launch as rules
from servecheck.launch.parse import Launch
from servecheck.launch.settings import LaunchSettings
from servecheck.plan import Plan, ServeOptions, make_plan, serve_model_arg
from servecheck.plan.alternatives import alternatives
from servecheck.plan.layouts import Layout, enumerate_layouts
from servecheck.source.jsonin import check_values
from servecheck.source.local import Checkpoint
from servecheck.source.quantcheck import check_quant_configs


def prepare(ckpt: Checkpoint, settings: LaunchSettings) -> Checkpoint:
    """--hf-overrides applied to config.json as vLLM does."""
    if not settings.hf_overrides:
        return ckpt
    config = copy.deepcopy(ckpt.config)
    _apply(config, settings.hf_overrides)
    # the overrides are input like config.json itself: checked as it was when read
    check_values(config, "config.json with --hf-overrides")
    check_quant_configs(config, ckpt.side_files)
    return dataclasses.replace(ckpt, config=config)


def _apply(into: dict[str, Any], new: dict[str, Any]) -> None:
    """vLLM 0.33 config/model.py ModelConfig._apply_dict_overrides: a nested config (text_config,
    vision_config, ...) is updated key by key; any other value, dicts such as rope_scaling
    included, is set as given."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key.endswith("config"):
            _apply(into[key], value)
        else:
            into[key] = value


def launch_target(target: Target, settings: LaunchSettings, ver: str) -> tuple[Target, list]:
    """The target the launch runs on: `--gpus` per node x nodes, sized up to the launch's
    tensor x pipeline x data parallel GPUs when no count was given (a count of 1)."""
    per_node = math.ceil(settings.world / settings.nodes)
    findings: list[Finding] = []
    if target.kind != "gpu":
        return target, findings
    count = target.count
    if count <= 1 and settings.world > 1:
        count = per_node
    elif count < per_node:
        findings.append(
            rules.MoreGpusThanGiven.make(
                [settings.layout_label],
                layout=settings.layout_label,
                needed=settings.world,
                given=count * settings.nodes,
                ver=ver,
            )
        )
    return dataclasses.replace(target, count=count), findings


def plan_launch(
    result: CheckResult,
    settings: LaunchSettings,
    launch: Launch,
    model_arg: str | None = None,
    recheck: Callable[[Any, int], Any] | None = None,
) -> tuple[Plan | None, list[Finding]]:
    """The plan of this launch (its layout and options, nothing else tried) with, when it does
    not fit, the changes that would make it fit, each re-checked; and every finding about the
    launch (its arguments and the plan's), to add to the check's."""
    ver = result.version.effective
    findings = list(settings.findings)
    ep = settings.ep
    if ep and not result.model.is_moe:
        findings.append(rules.ExpertParallelIgnored.make(["--enable-expert-parallel"], ver=ver))
        ep = False
    # vLLM 0.33 fused_moe/config.py FusedMoEParallelConfig.make: EP needs tp x dp > 1
    ep = ep and settings.tp * settings.dp > 1
    findings.append(_read(settings, launch, ver))
    target = result.target
    if target.kind != "gpu":
        return None, findings
    from servecheck.errors import InputError
    from servecheck.hardware.gpus import find_gpu

    try:
        row = find_gpu(target.name)
    except InputError:
        return None, findings
    per_node = max(target.count, math.ceil(settings.world / settings.nodes))
    layout = Layout(tp=settings.tp, pp=settings.pp, ep=ep, gpus_per_node=per_node, dp=settings.dp)
    arg = model_arg or serve_model_arg(result.location)
    plan = make_plan(
        result,
        row,
        per_node,
        settings.nodes,
        settings.options,
        model_arg=arg,
        only=[layout],
        exact=True,
        env=settings.env,
    )
    if not plan.fits:
        alts = alternatives(result, row, plan, model_arg=arg, env=settings.env, recheck_gpu=recheck)
        plan = dataclasses.replace(plan, alternatives=tuple(alts))
    return plan, findings + list(plan.findings)


def constrain(settings: LaunchSettings, launch: Launch, gpus: int, nodes: int, moe: bool):
    """Layouts `plan` considers when a launch fixes some of -tp, -pp, -dp, -ep (None: all)."""
    fixed = {
        "tp": launch.given("tensor_parallel_size"),
        "pp": launch.given("pipeline_parallel_size"),
        "dp": launch.given("data_parallel_size"),
        "ep": launch.given("enable_expert_parallel"),
    }
    if not any(fixed.values()):
        return None
    out = []
    for lay in enumerate_layouts(gpus, nodes, moe):
        if fixed["tp"] and lay.tp != settings.tp:
            continue
        if fixed["pp"] and lay.pp != settings.pp:
            continue
        if fixed["dp"] and lay.dp != settings.dp:
            continue
        if fixed["ep"] and lay.ep != (settings.ep and moe):
            continue
        out.append(lay)
    return out


# ServeOptions field <- the EngineArgs fields that set it
_OPTION_SOURCES = {
    "max_model_len": ("max_model_len",),
    "kv_cache_dtype": ("kv_cache_dtype",),
    "gpu_memory_utilization": ("gpu_memory_utilization",),
    "max_num_batched_tokens": ("max_num_batched_tokens",),
    "max_num_seqs": ("max_num_seqs",),
    "block_size": ("block_size",),
    "enforce_eager": ("enforce_eager", "optimization_level", "compilation_config"),
    "speculative": ("speculative_config", "spec_method"),
    "moe_backend": ("moe_backend",),
    "enable_expert_parallel": ("enable_expert_parallel",),
    "cpu_offload_gb": ("cpu_offload_gb",),
    "kv_cache_memory_bytes": ("kv_cache_memory_bytes",),
    "disable_sliding_window": ("disable_sliding_window",),
    "text_only": ("limit_mm_per_prompt", "language_model_only"),
}


def merge_options(base: ServeOptions, settings: LaunchSettings, launch: Launch) -> ServeOptions:
    """`plan`'s own options, with every one the launch sets taken from the launch."""
    changes = {
        name: getattr(settings.options, name)
        for name, dests in _OPTION_SOURCES.items()
        if any(launch.given(d) for d in dests)
    }
    if settings.options.allow_long_max_model_len:
        changes["allow_long_max_model_len"] = True
    return dataclasses.replace(base, **changes)


def _read(settings: LaunchSettings, launch: Launch, ver: str) -> Finding:
    opts = settings.options
    parts = [f"{settings.layout_label} ({settings.world} GPU{'s' if settings.world > 1 else ''}"]
    parts[0] += f" on {settings.nodes} nodes)" if settings.nodes > 1 else ")"
    if opts.max_model_len:
        parts.append(f"max_model_len {opts.max_model_len:,}")
    if opts.gpu_memory_utilization is not None:
        parts.append(f"gpu_memory_utilization {opts.gpu_memory_utilization:g}")
    if opts.kv_cache_dtype != "auto":
        parts.append(f"kv_cache_dtype {opts.kv_cache_dtype}")
    for name, value in (
        ("max_num_seqs", opts.max_num_seqs),
        ("max_num_batched_tokens", opts.max_num_batched_tokens),
        ("block_size", opts.block_size),
        ("kv_cache_memory_bytes", opts.kv_cache_memory_bytes),
    ):
        if value:
            parts.append(f"{name} {value:,}")
    if opts.cpu_offload_gb:
        parts.append(f"cpu_offload_gb {opts.cpu_offload_gb:g}")
    if opts.enforce_eager:
        parts.append("no CUDA graphs")
    if settings.speculative:
        parts.append(f"speculative {settings.speculative.get('method', '?')}")
    if settings.hf_overrides:
        parts.append("hf_overrides " + ", ".join(sorted(settings.hf_overrides)))
    if settings.env:
        parts.append("env " + " ".join(f"{k}={v}" for k, v in sorted(settings.env.items())))
    summary = f"{launch.source}, vLLM {launch.release} arguments: " + "; ".join(parts)
    return rules.LaunchRead.make(
        [launch.source], summary=summary, ver=ver, evidence={"values": dict(launch.values)}
    )
