"""`servecheck plan` output: JSON (stable field names), rich terminal text, markdown; exit code."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from servecheck.findings.registry import Severity
from servecheck.plan.config import GIB
from servecheck.plan.memory import LayoutPlan
from servecheck.plan.planner import Plan
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json
from servecheck.render.svg import (
    SEGMENTS,
    TERMINAL_CHAR,
    TERMINAL_STYLE,
    bars,
    svg_image,
    terminal_bar,
)
from servecheck.render.tables import TextTable, grid

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


def emit(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(plan_to_dict(plan))
    elif args.format == "markdown":
        write(f"# servecheck plan: {plan.model}\n\n" + render_plan_markdown(plan))
    elif getattr(args, "quiet", False):
        for f in plan.findings:
            if f.severity.value == "error":
                write(f"{f.code}: {f.message}")
        if not plan.fits:
            write("No layout of these GPUs fits.")
    else:
        render_plan_text(plan, make_console(), verbose=args.verbose)


def exit_code(plan: Plan) -> int:
    """1 when no layout fits or the plan carries an error finding (as `check` would)."""
    if not plan.fits:
        return exit_codes.PROBLEMS
    return exit_codes.for_findings(plan.findings)


def rejected_codes(p: LayoutPlan) -> str:
    """The codes of the vLLM errors that reject a layout, each once."""
    codes = dict.fromkeys(f.code for f in p.problems if f.severity == Severity.ERROR)
    return ", ".join(codes)


def kv_text(nbytes: float) -> str:
    """KV-cache memory per GPU; nothing left (weights and overheads take it all) is said so."""
    return f"{nbytes / GIB:.1f} GiB" if nbytes > 0 else "none left"


def _g(n: float) -> float:
    return round(n / GIB, 2)


# ---------------------------------------------------------------------------------------------
# JSON


def layout_to_dict(p: LayoutPlan, plan: Plan) -> dict[str, Any]:
    lay = p.layout
    context = plan.options.max_model_len or plan.max_model_len
    return {
        "layout": lay.label,
        "tensor_parallel_size": lay.tp,
        "pipeline_parallel_size": lay.pp,
        "enable_expert_parallel": lay.ep,
        "gpus": lay.world,
        "nodes": lay.nodes,
        "valid": p.valid,
        "status": p.status,
        "fits": p.fits,
        "weights_gib_per_gpu": _g(p.weights_per_gpu) if p.stages else None,
        "kv_cache_gib_per_gpu": _g(p.available_kv) if p.stages else None,
        "kv_cache_tokens": p.kv_tokens if p.available_kv > 0 else 0,
        "max_concurrency": round(p.concurrency, 2),
        "concurrency_context": context,
        "longest_context": p.longest,
        "stages": [
            {
                "stage": s.stage,
                "layers": list(s.weights.layers),
                "weights_gib": _g(s.weights.total),
                "weights_by_kind_gib": {k: _g(v) for k, v in sorted(s.weights.by_kind.items())},
                "rotary_cache_gib": _g(s.weights.buffers),
                "activation_peak_gib": _g(s.overheads.activation),
                "activation_terms_gib": {k: _g(v) for k, v in s.overheads.parts},
                "model_runner": s.overheads.runner,
                "non_torch_gib": _g(s.overheads.non_torch),
                "cudagraph_gib": _g(s.overheads.cudagraph),
                "cudagraph_in_budget": s.overheads.cudagraph_in_budget,
                "kv_cache_gib": _g(s.available_kv),
                "kv_bytes_per_token": s.kv_bytes_per_token,
                "num_blocks": s.capacity.num_blocks,
                "kv_cache_tokens": s.capacity.tokens,
            }
            for s in p.stages
        ],
        "problems": [f.as_dict() for f in p.problems],
        "findings": [f.as_dict() for f in p.findings],
    }


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    rec = plan.recommended
    return {
        "gpu": plan.gpu.name,
        "gpus_per_node": plan.gpus_per_node,
        "nodes": plan.nodes,
        "gpu_memory_gib": _g(plan.cuda_total),
        "gpu_memory_source": plan.cuda_total_source,
        "vllm_version": plan.version,
        "memory_model_era": plan.era.start,
        "gpu_memory_utilization": (
            plan.options.gpu_memory_utilization or plan.era.gpu_memory_utilization
        ),
        "max_model_len": plan.max_model_len,
        "max_model_len_derived": plan.max_len_derived,
        "kv_cache_dtype": plan.kv_dtype,
        "block_size": plan.block_size,
        "max_num_batched_tokens": plan.batch.max_num_batched_tokens,
        "max_num_seqs": plan.batch.max_num_seqs,
        "fits": plan.fits,
        "recommended": rec.layout.label if rec else None,
        "recommended_max_model_len": plan.recommended_len,
        "command": plan.command.text() if plan.command else None,
        "layouts": [layout_to_dict(p, plan) for p in plan.layouts],
        "moe_tp_sizes": list(plan.moe_tp_table),
        "estimated_terms": list(plan.estimated),
        "notes": list(plan.notes),
        "findings": [f.as_dict() for f in plan.findings],
    }


# ---------------------------------------------------------------------------------------------
# Terminal


def layouts_table(plan: Plan) -> Table:
    context = plan.options.max_model_len or plan.max_model_len
    t = TextTable(
        "Layout",
        "GPUs>",
        "Verdict",
        "Weights>",
        "KV cache>",
        "KV tokens>",
        "Max context>",
        "Conc.>",
        "Rejected",
        title="Parallel layouts (per GPU)",
        caption=f"Conc. = requests of {context:,} tokens the KV cache holds at once; Rejected = "
        "rule codes of vLLM errors (servecheck rules CODE)",
    )
    for p in plan.layouts:
        rejects = rejected_codes(p)
        ok = p.fits
        style = "green" if ok else ("red" if p.status != "context" else "yellow")
        has_kv = p.stages and p.available_kv > 0
        t.add_row(
            p.layout.label,
            str(p.layout.world),
            Text(STATUS_TEXT[p.status], style=style),
            f"{p.weights_per_gpu / GIB:.1f} GiB" if p.stages else "-",
            kv_text(p.available_kv) if p.stages else "-",
            f"{p.kv_tokens:,}" if has_kv else "-",
            f"{p.longest:,}" if has_kv and p.valid else "-",
            f"{p.concurrency:.2f}x" if has_kv and p.valid else "-",
            rejects or "",
        )
    return t


def render_plan_text(plan: Plan, console: Console, verbose: bool = False) -> None:
    util = plan.options.gpu_memory_utilization or plan.era.gpu_memory_utilization
    head = grid()
    head.add_row("Model", plan.model)
    head.add_row(
        "GPUs",
        f"{plan.total_gpus}x {plan.gpu.name} ({plan.cuda_total / GIB:.2f} GiB usable by CUDA"
        + (f", {plan.nodes} nodes" if plan.nodes > 1 else "")
        + ")",
    )
    head.add_row(
        "vLLM",
        f"{plan.version} (memory model of {plan.era.start}+), gpu_memory_utilization {util:g}",
    )
    head.add_row(
        "Serving",
        f"max_model_len {plan.max_model_len:,}, KV cache {plan.kv_dtype}, block {plan.block_size}, "
        f"max_num_batched_tokens {plan.batch.max_num_batched_tokens}, max_num_seqs "
        f"{plan.batch.max_num_seqs}",
    )
    console.print(head)
    console.print(layouts_table(plan))
    rec = plan.recommended
    if rec is not None:
        console.print(Text(f"\nRecommended: {rec.layout.label}", style="bold green"))
        for note in plan.notes:
            console.print(Text(f"  ({note})", style="yellow"))
        render_bars(rec, console)
        console.print(Text("\nLaunch:", style="bold"))
        console.print(Text(plan.command.text() if plan.command else "", style="cyan"))
    else:
        console.print(Text("\nNo layout of these GPUs fits.", style="bold red"))
    if plan.moe_tp_table:
        console.print(moe_table(plan))
    for f in plan.findings:
        if f.severity == Severity.INFO and not verbose and f.code != "M005":
            continue
        style = {"error": "bold red", "warning": "yellow", "info": "cyan"}[f.severity.value]
        line = Text(f" {f.code} ", style=style)
        line.append(f.message)
        console.print(line)
        if f.vllm_message and f.severity != Severity.INFO:
            console.print(Text(f"     vLLM: {f.vllm_message}", style="dim"))
        if f.fix and f.code != "M005":
            console.print(Text(f"     fix: {f.fix}", style="green"))
    console.print(Text(f"\nEstimated, not computed: {', '.join(plan.estimated)}.", style="dim"))


def render_plan_summary(plan: Plan, console: Console) -> None:
    """The short form `servecheck check --gpu` prints: verdict, bar and command."""
    rec = plan.recommended
    title = Text("Memory plan ", style="bold")
    title.append(f"({plan.total_gpus}x {plan.gpu.name}, max_model_len {plan.max_model_len:,})")
    console.print(title)
    if rec is None:
        near = [p for p in plan.layouts if p.valid and p.stages]
        if near:
            show = max(near, key=lambda p: (p.layout.world, -p.layout.pp))
            console.print(Text(f"  does not fit: {show.layout.label}", style="bold red"))
            render_bars(show, console)
        else:
            console.print(Text("  no layout of these GPUs passes vLLM's checks", style="bold red"))
        return
    shorter = plan.recommended_len and plan.recommended_len < plan.max_model_len
    verdict = "fits at --max-model-len " + f"{plan.recommended_len:,}" if shorter else "fits"
    line = Text(f"  {rec.layout.label}: {verdict}; ", style="bold green")
    line.append(
        f"KV cache {rec.available_kv / GIB:.1f} GiB/GPU = {rec.kv_tokens:,} tokens, "
        f"{rec.concurrency:.2f}x at {rec.max_model_len:,}"
    )
    console.print(line)
    for note in plan.notes:
        console.print(Text(f"  ({note})", style="yellow"))
    render_bars(rec, console)
    if plan.command:
        console.print(Text("  " + plan.command.text().replace("\n", "\n  "), style="cyan"))


def render_bars(p: LayoutPlan, console: Console) -> None:
    width = max(20, min(60, console.width - 14))
    for bar in bars(p):
        line = Text(f"  {bar.label:<9} ")
        for text, style in terminal_bar(bar, width):
            line.append(text, style=style)
        console.print(line)
        parts = dict(bar.parts)
        over = f" · {bar.over / GIB:.1f} GiB over the GPU" if bar.over else ""
        console.print(
            Text(
                f"  {'':<9} weights {parts['weights'] / GIB:.1f} · overhead "
                f"{parts['overhead'] / GIB:.1f} · KV {parts['kv'] / GIB:.1f} · free "
                f"{parts['free'] / GIB:.1f} GiB{over}",
                style="dim",
            )
        )
    legend = Text("  ")
    for key, label, _ in SEGMENTS:
        legend.append(TERMINAL_CHAR[key] * 2, style=TERMINAL_STYLE[key])
        legend.append(f" {label}  ", style="dim")
    console.print(legend)


def moe_table(plan: Plan) -> Table:
    t = TextTable(
        "TP",
        "Expert width/rank",
        "Block-FP8 (compressed-tensors)",
        "Block-FP8 (fp8 method)",
        "Per-channel FP8",
        title="Expert tensor-parallel sizes by FP8 format (experts split by TP)",
    )
    for row in plan.moe_tp_table:
        refined = row["block_fp8_plain_refined_to"]
        plain = "yes" if row["block_fp8_plain"] else "no"
        if row["block_fp8_plain"] and refined:
            plain = f"yes (scales refined to {refined}, Triton only)"
        t.add_row(
            str(row["tp"]),
            str(row["intermediate_per_rank"]),
            "yes" if row["block_fp8_compressed_tensors"] else "no",
            plain,
            "yes" if row["per_channel_fp8"] else "no",
        )
    t.caption = "With --enable-expert-parallel every format works: experts stay whole."
    return t


# ---------------------------------------------------------------------------------------------
# Markdown


def render_plan_markdown(plan: Plan, heading: str = "##", findings: bool = True) -> str:
    """The plan section; `findings=False` when the report around it lists them already."""
    util = plan.options.gpu_memory_utilization or plan.era.gpu_memory_utilization
    context = plan.options.max_model_len or plan.max_model_len
    out = [
        f"{heading} Memory and parallelism plan",
        "",
        f"{plan.total_gpus}x {plan.gpu.name} ({plan.cuda_total / GIB:.2f} GiB usable by CUDA each"
        + (f", {plan.nodes} nodes" if plan.nodes > 1 else "")
        + f"), vLLM {plan.version}, gpu_memory_utilization {util:g}, max_model_len "
        f"{plan.max_model_len:,}, KV cache {plan.kv_dtype}.",
        "",
        "| Layout | GPUs | Verdict | Weights/GPU | KV cache/GPU | KV tokens | Longest context | "
        f"Concurrency @ {context:,} | vLLM rejects |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in plan.layouts:
        rejects = rejected_codes(p)
        has_kv = p.stages and p.available_kv > 0 and p.valid
        out.append(
            f"| {p.layout.label} | {p.layout.world} | {STATUS_TEXT[p.status]} | "
            f"{p.weights_per_gpu / GIB:.1f} GiB | {kv_text(p.available_kv)} | "
            + (f"{p.kv_tokens:,} | {p.longest:,} | {p.concurrency:.2f}x" if has_kv else "– | – | –")
            + f" | {rejects} |"
        )
    out.append("")
    rec = plan.recommended
    if rec is not None:
        out += [f"**Recommended: {rec.layout.label}**", ""]
        out += [f"> {note}" for note in plan.notes] + ([""] if plan.notes else [])
        out.append(svg_image(rec, f"Memory per GPU, {rec.layout.label} on {plan.gpu.name}"))
        out += ["", "```sh", plan.command.text() if plan.command else "", "```", ""]
    else:
        out += ["**No layout of these GPUs fits.**", ""]
        worst = min(
            (p for p in plan.layouts if p.valid and p.stages),
            key=lambda p: -p.layout.world,
            default=None,
        )
        if worst is not None:
            out.append(svg_image(worst, f"Memory per GPU, {worst.layout.label} (does not fit)"))
            out.append("")
    if plan.moe_tp_table:
        out += [
            "Expert tensor-parallel sizes by FP8 format (with `--enable-expert-parallel` experts "
            "stay whole and every format works):",
            "",
            "| TP | Expert width/rank | Block-FP8 (compressed-tensors) | Block-FP8 (fp8 method) | "
            "Per-channel FP8 |",
            "|---:|---:|---|---|---|",
        ]
        for row in plan.moe_tp_table:
            refined = row["block_fp8_plain_refined_to"]
            plain = "yes" if row["block_fp8_plain"] else "no"
            if row["block_fp8_plain"] and refined:
                plain = f"yes (refined to {refined}, Triton)"
            out.append(
                f"| {row['tp']} | {row['intermediate_per_rank']} | "
                f"{'yes' if row['block_fp8_compressed_tensors'] else 'no'} | {plain} | "
                f"{'yes' if row['per_channel_fp8'] else 'no'} |"
            )
        out.append("")
    for f in plan.findings if findings else ():
        if f.severity == Severity.INFO and f.code not in ("M005", "M009"):
            continue
        out.append(f"- **{f.code}** {f.message}")
        if f.vllm_message and f.severity != Severity.INFO:
            out.append(f"  vLLM: `{f.vllm_message}`")
    out.append("")
    return "\n".join(out)
