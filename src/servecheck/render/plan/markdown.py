"""`servecheck plan --format markdown` (also the plan section of the check report)."""

from __future__ import annotations

from servecheck.findings.registry import Severity
from servecheck.plan.config import GIB
from servecheck.plan.planner import Plan
from servecheck.render.plan.words import (
    MOE_TP_COLUMNS,
    STATUS_TEXT,
    kv_text,
    moe_tp_cells,
    rejected_codes,
)
from servecheck.render.svg import svg_image


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
    if plan.max_len is not None:
        out += [f"Model maximum context: {plan.max_len.derived:,} ({plan.max_len.why}).", ""]
    if rec is not None:
        out += [f"**Recommended: {rec.layout.label}**", ""]
        if plan.choice:
            out += [f"Why: {plan.choice}.", ""]
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
    if plan.alternatives:
        out += ["**What would fit** (each change planned again):", ""]
        for alt in plan.alternatives:
            out += [f"- `{alt.change}`: {alt.cost}", "", "  ```sh"]
            out += ["  " + line for line in alt.command.splitlines()] + ["  ```", ""]
    if plan.moe_tp_table:
        out += [
            "Expert tensor-parallel sizes by FP8 format (with `--enable-expert-parallel` experts "
            "stay whole and every format works):",
            "",
            "| " + " | ".join(MOE_TP_COLUMNS) + " |",
            "|---:|---:|---|---|---|",
        ]
        out += ["| " + " | ".join(moe_tp_cells(row)) + " |" for row in plan.moe_tp_table]
        out.append("")
    for f in plan.findings if findings else ():
        if f.severity == Severity.INFO and f.code not in ("M005", "M009"):
            continue
        out.append(f"- **{f.code}** {f.message}")
        if f.vllm_message and f.severity != Severity.INFO:
            out.append(f"  vLLM: `{f.vllm_message}`")
    out.append("")
    return "\n".join(out)
