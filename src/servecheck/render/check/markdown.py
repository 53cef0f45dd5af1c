"""`servecheck check --format markdown`: overview, model, quantization, module resolution,
kernels, findings, plan and a verified action plan."""

from __future__ import annotations

from servecheck.findings.registry import Severity
from servecheck.model.inventory import ATTENTION
from servecheck.render.check.action_plan import action_plan
from servecheck.render.check.kv_cache import kv_cache_text
from servecheck.report import CheckReport
from servecheck.summary import (
    KindRow,
    attention_text,
    counted,
    entries_text,
    human_bytes,
    kind_rows,
    quant_text,
    schemes_text,
)

ICON = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.INFO: "ℹ️"}


def render_markdown(report: CheckReport) -> str:
    cfg = report.model
    family = report.family.name if report.family else "unknown"
    out: list[str] = [f"# servecheck report: {report.location}", ""]
    out += ["## Overview", ""]
    errors = [f for f in report.findings if f.severity == Severity.ERROR]
    warnings = [f for f in report.findings if f.severity == Severity.WARNING]
    out.append(
        f"**Verdict: {report.verdict.upper()}** — {counted(len(errors), 'error')}, "
        f"{counted(len(warnings), 'warning')}, predicted for vLLM {report.version.effective}"
        + (f" on {report.target.name}" if report.target.kind != "none" else "")
        + "."
    )
    out.append("")
    for note in report.notes:
        out.append(f"> {note}")
    if report.checkpoint.gguf is not None:
        out.append("> A GGUF file: the config is the one transformers builds from its metadata.")
    elif report.checkpoint.config_only:
        out.append("> Only config.json was given: tensor names, dtypes and sizes are inferred.")
    out.append("")
    out += ["## Model", "", "| Parameter | Value |", "|---|---|"]
    rows = [
        ("Architecture", cfg.architecture),
        ("Family", family),
        ("hidden_size", cfg.hidden_size),
        ("num_hidden_layers", cfg.num_layers),
        ("attention", attention_text(cfg)),
        ("head_dim", cfg.head_dim),
        ("intermediate_size", cfg.intermediate_size),
        ("vocab_size", cfg.vocab_size),
        ("dtype", cfg.dtype),
        ("tie_word_embeddings", cfg.tie_word_embeddings),
    ]
    if cfg.is_moe:
        rows += [
            (
                "experts (routed / shared / per token)",
                f"{cfg.num_experts} / {cfg.num_shared_experts} / {cfg.num_experts_per_tok}",
            ),
            ("moe_intermediate_size", cfg.moe_intermediate_size),
            ("first_k_dense_replace", cfg.first_k_dense_replace),
        ]
    if cfg.num_nextn_predict_layers:
        rows.append(("MTP layers (num_nextn_predict_layers)", cfg.num_nextn_predict_layers))
    rows.append(
        (
            "Weights",
            human_bytes(report.total_bytes)
            + (
                " (inferred)"
                if report.checkpoint.config_only and report.checkpoint.gguf is None
                else " (from headers)"
            ),
        )
    )
    out += [f"| {k} | {v} |" for k, v in rows]
    out += ["", "## Quantization", "", quant_text(report), ""]
    if report.quant.ignore_list:
        shown = report.quant.ignore_list[:12]
        out.append(
            "Ignore list ({}): {}{}".format(
                entries_text(len(report.quant.ignore_list)),
                ", ".join(f"`{x}`" for x in shown),
                f" and {len(report.quant.ignore_list) - len(shown)} more"
                if len(report.quant.ignore_list) > len(shown)
                else "",
            )
        )
        out.append("")
    out += [
        "## Module resolution (as vLLM builds the model)",
        "",
        "| Kind | Count | Scheme | Min capability | Ignored | Size |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in kind_rows(report):
        cap = f"sm_{row.min_capability}" if row.min_capability else "–"
        out.append(
            f"| `{row.kind}` | {row.count} | {scheme_cell(report, row)} | {cap} | "
            f"{row.ignored or '–'} | {human_bytes(row.nbytes) if row.nbytes else '–'} |"
        )
    if report.kernels is not None:
        from servecheck.render.kernels import markdown_kernels

        out += ["", *markdown_kernels(report.kernels)]
    out += ["", "## Findings", ""]
    if not report.findings:
        out.append("No findings.")
    for f in report.findings:
        out.append(
            f"### {ICON[f.severity]} {f.code} `{f.name}`"
            + (f" ({f.count} occurrences)" if f.count > 1 else "")
        )
        out.append("")
        out.append(f.message)
        out.append("")
        if f.vllm_message:
            out.append(f"vLLM: `{f.vllm_message}`")
            out.append("")
        if f.subjects:
            shown = ", ".join(f"`{s}`" for s in f.subjects[:6])
            more = f" and {f.count - 6} more" if f.count > 6 else ""
            out.append(f"Where: {shown}{more}")
            out.append("")
        out.append(f"**Fix:** {f.fix}")
        out.append("")
        out.append(f"<sub>Source: {f.vllm_ref}</sub>")
        out.append("")
    if getattr(report, "plan", None) is not None:
        from servecheck.render.plan.markdown import render_plan_markdown

        out += [render_plan_markdown(report.plan, findings=False)]  # listed once, above
    out += ["## Recommendation", ""]
    if errors:
        out.append("vLLM will not load this checkpoint as it stands; follow the plan below.")
    elif warnings:
        out.append("vLLM should load this checkpoint; review the warnings above first.")
    else:
        out.append("vLLM should load this checkpoint as configured.")
    out.append("")
    # Generated from the findings and a verified `servecheck fix` proposal.
    out += action_plan(report)
    return "\n".join(out)


def scheme_cell(report: CheckReport, row: KindRow) -> str:
    return kv_cache_text(report) if row.kind == ATTENTION else schemes_text(row.schemes)
