"""`servecheck plan` as terminal text (also the short plan `check --gpu` prints)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from servecheck.findings.registry import Severity
from servecheck.plan.config import GIB
from servecheck.plan.memory import LayoutPlan
from servecheck.plan.planner import Plan
from servecheck.render.plan.words import (
    MOE_TP_COLUMNS,
    STATUS_TEXT,
    kv_text,
    moe_tp_cells,
    rejected_codes,
)
from servecheck.render.svg import SEGMENTS, TERMINAL_CHAR, TERMINAL_STYLE, bars, terminal_bar
from servecheck.render.tables import TextTable, grid


def layouts_table(plan: Plan) -> TextTable:
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
    if plan.max_len is not None:
        head.add_row("Max context", f"{plan.max_len.derived:,} ({plan.max_len.why})")
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
        if plan.choice:
            console.print(Text(f"  why: {plan.choice}"))
        for note in plan.notes:
            console.print(Text(f"  ({note})", style="yellow"))
        render_bars(rec, console)
        console.print(Text("\nLaunch:", style="bold"))
        console.print(Text(plan.command.text() if plan.command else "", style="cyan"))
    else:
        console.print(Text("\nNo layout of these GPUs fits.", style="bold red"))
    render_alternatives(plan, console)
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
        render_alternatives(plan, console)
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


def render_alternatives(plan: Plan, console: Console) -> None:
    """What would fit instead, each change planned again."""
    if not plan.alternatives:
        return
    console.print(Text("\nWhat would fit (each re-checked):", style="bold"))
    for alt in plan.alternatives:
        line = Text(f"  {alt.change}", style="bold")
        line.append(f": {alt.cost}")
        console.print(line)
        console.print(Text("    " + alt.command.replace("\n", "\n    "), style="cyan"))


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


def moe_table(plan: Plan) -> TextTable:
    t = TextTable(
        *MOE_TP_COLUMNS,
        title="Expert tensor-parallel sizes by FP8 format (experts split by TP)",
    )
    for row in plan.moe_tp_table:
        t.add_row(*moe_tp_cells(row))
    t.caption = "With --enable-expert-parallel every format works: experts stay whole."
    return t
