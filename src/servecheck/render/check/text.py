"""Rich terminal output for `servecheck check`."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from servecheck.findings.registry import Finding, Severity
from servecheck.model.inventory import ATTENTION
from servecheck.render.check.kv_cache import kv_cache_text
from servecheck.render.console import VERDICT_STYLE
from servecheck.render.tables import TextTable, grid
from servecheck.report import CheckReport
from servecheck.summary import (
    attention_text,
    counted,
    human_bytes,
    kind_rows,
    quant_text,
    schemes_text,
)

SEVERITY_STYLE = {
    Severity.ERROR: ("✖", "bold red"),
    Severity.WARNING: ("▲", "yellow"),
    Severity.INFO: ("•", "cyan"),
}


def render_text(report: CheckReport, console: Console, verbose: bool = False) -> None:
    console.print(_header(report))
    console.print(_modules_table(report))
    if report.kernels is not None:
        from servecheck.render.kernels import rich_kernels

        console.print(rich_kernels(report.kernels))
    if getattr(report, "plan", None) is not None:
        from servecheck.render.plan.text import render_plan_summary

        render_plan_summary(report.plan, console)
    if report.findings:
        console.print(Text("Findings", style="bold"))
        for f in report.findings:
            if f.severity == Severity.INFO and not verbose:
                continue
            console.print(_finding(f, verbose))
        hidden = sum(f.severity == Severity.INFO for f in report.findings)
        if hidden and not verbose:
            console.print(
                Text(
                    f"  ({counted(hidden, 'info finding')} hidden; --verbose shows them)",
                    style="dim",
                )
            )
    console.print(_verdict(report))


def _header(report: CheckReport) -> Table:
    cfg = report.model
    t = grid()
    family = report.family.name if report.family else "unknown family"
    dims = f"{cfg.num_layers} layers"
    if cfg.num_nextn_predict_layers:
        dims += f" + {cfg.num_nextn_predict_layers} MTP"
    dims += f", hidden {cfg.hidden_size}, {attention_text(cfg)}"
    if cfg.is_moe:
        dims += f", {cfg.num_experts} experts (top-{cfg.num_experts_per_tok})"
    source = report.checkpoint.source
    t.add_row("Checkpoint", source.describe() if source else report.location)
    t.add_row("Model", f"{cfg.architecture} ({family}): {dims}")
    ckpt = report.checkpoint
    if ckpt.gguf is not None:
        n = len(ckpt.gguf.tensors)
        size = f"{human_bytes(report.total_bytes)} in {n:,} tensors (GGUF v{ckpt.gguf.version})"
    elif ckpt.config_only:
        size = f"{human_bytes(report.total_bytes)} (inferred from config.json)"
    else:
        n = len(ckpt.tensors or {})
        shards = counted(len(ckpt.shards), "shard")
        size = f"{human_bytes(report.total_bytes)} in {counted(n, 'tensor')}, {shards}"
    t.add_row("Weights", size)
    t.add_row("Quantization", quant_text(report))
    t.add_row(
        "vLLM",
        f"{report.version.effective} ({report.version.source}"
        + ("" if report.version.exact else f", asked {report.version.requested}")
        + ")",
    )
    target = report.target
    if target.kind == "gpu":
        t.add_row("Target", f"{target.name} (sm_{target.capability})")
    elif target.kind == "cpu":
        t.add_row("Target", "vLLM CPU backend")
    for note in report.notes:
        t.add_row("Note", Text(note, style="dim"))
    return t


def _modules_table(report: CheckReport) -> Table:
    t = TextTable(
        "Kind",
        "Count>",
        "Scheme",
        "Min cap>",
        "Ignored>",
        "Size>",
        title="Module resolution (vLLM naming)",
    )
    for row in kind_rows(report):
        cap = f"sm_{row.min_capability}" if row.min_capability else "-"
        count = str(row.count) + (f" ({row.mtp} MTP)" if row.mtp else "")
        scheme = kv_cache_text(report) if row.kind == ATTENTION else schemes_text(row.schemes)
        style = "red" if "error" in row.schemes else None
        t.add_row(
            row.kind,
            count,
            Text(scheme, style=style or ""),
            cap,
            str(row.ignored) if row.ignored else "-",
            human_bytes(row.nbytes) if row.nbytes else "-",
        )
    return t


def _finding(f: Finding, verbose: bool) -> Group:
    icon, style = SEVERITY_STYLE[f.severity]
    head = Text()
    head.append(f" {icon} {f.code} ", style=style)
    head.append(f"{f.name}: ", style="bold")
    head.append(f.message)
    if f.count > 1:
        head.append(f"  [{f.count}]", style="dim")
    lines = [head]
    if f.vllm_message:
        lines.append(Text(f"     vLLM: {f.vllm_message}", style="dim"))
    lines.append(Text(f"     fix: {f.fix}", style="green"))
    if verbose:
        lines.append(Text(f"     source: {f.vllm_ref}", style="dim"))
        if f.subjects:
            shown = ", ".join(f.subjects[:5]) + (f" and {f.count - 5} more" if f.count > 5 else "")
            lines.append(Text(f"     where: {shown}", style="dim"))
    return Group(*lines)


def _verdict(report: CheckReport) -> Text:
    errors = sum(f.severity == Severity.ERROR for f in report.findings)
    warnings = sum(f.severity == Severity.WARNING for f in report.findings)
    text = Text("\nVerdict: ")
    text.append(report.verdict.upper(), style=VERDICT_STYLE[report.verdict])
    text.append(f" ({counted(errors, 'error')}, {counted(warnings, 'warning')})")
    return text
