"""Memory breakdown per GPU: one stacked bar per pipeline stage, as SVG and as terminal text."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from servecheck.plan.config import GIB
from servecheck.plan.memory import LayoutPlan

# (key, label, colour) in drawing order
SEGMENTS = (
    ("weights", "weights", "#4e79a7"),
    ("overhead", "activations, CUDA graphs, non-torch", "#f28e2b"),
    ("kv", "KV cache", "#59a14f"),
    ("free", "left free (outside --gpu-memory-utilization)", "#bab0ac"),
)
TERMINAL_STYLE = {"weights": "blue", "overhead": "yellow", "kv": "green", "free": "grey50"}
TERMINAL_CHAR = {"weights": "█", "overhead": "▓", "kv": "▒", "free": "░"}


@dataclass(frozen=True)
class Bar:
    label: str
    total: int
    parts: tuple[tuple[str, int], ...]  # (segment key, bytes); over = bytes beyond the GPU
    over: int = 0


def bars(plan: LayoutPlan) -> list[Bar]:
    """One bar per pipeline stage (every GPU of a stage looks the same)."""
    out = []
    for s in plan.stages:
        weights = s.weights.total
        overhead = s.overheads.in_budget
        kv = max(s.available_kv, 0)
        used = weights + overhead + kv
        free = max(plan.total - used, 0)
        over = max(used - plan.total, 0)
        label = f"stage {s.stage}" if len(plan.stages) > 1 else "each GPU"
        out.append(
            Bar(
                label=label,
                total=plan.total,
                parts=(("weights", weights), ("overhead", overhead), ("kv", kv), ("free", free)),
                over=over,
            )
        )
    return out


def render_svg(plan: LayoutPlan, title: str, width: int = 640) -> str:
    """A self-contained SVG (no scripts, no external references)."""
    rows = bars(plan)
    bar_h, gap, left, top = 26, 14, 80, 34
    legend_h = 22 * len(SEGMENTS)
    height = top + len(rows) * (bar_h + gap) + legend_h + 10
    scale_total = max(max((b.total + b.over) for b in rows), 1)
    px = (width - left - 20) / scale_total
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="20" font-weight="bold">{escape(title)}</text>',
    ]
    y = top
    for b in rows:
        out.append(f'<text x="4" y="{y + bar_h * 0.68:.0f}">{escape(b.label)}</text>')
        x = float(left)
        for key, nbytes in b.parts:
            if nbytes <= 0:
                continue
            w = nbytes * px
            colour = dict((k, c) for k, _, c in SEGMENTS)[key]
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                f"<title>{escape(_label(key))}: {nbytes / GIB:.2f} GiB</title></rect>"
            )
            if w > 48:
                out.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + bar_h * 0.68:.0f}" text-anchor="middle" '
                    f'fill="white">{nbytes / GIB:.1f} GiB</text>'
                )
            x += w
        if b.over:
            w = b.over * px
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="none" '
                f'stroke="#e15759" stroke-width="2" stroke-dasharray="4 3">'
                f"<title>over the GPU by {b.over / GIB:.2f} GiB</title></rect>"
            )
        gpu_x = left + b.total * px
        out.append(
            f'<line x1="{gpu_x:.1f}" y1="{y - 4}" x2="{gpu_x:.1f}" y2="{y + bar_h + 4}" '
            'stroke="#333" stroke-width="1.5"/>'
        )
        y += bar_h + gap
    for _key, label, colour in SEGMENTS:
        out.append(f'<rect x="{left}" y="{y}" width="14" height="14" fill="{colour}"/>')
        out.append(f'<text x="{left + 20}" y="{y + 11}">{escape(label)}</text>')
        y += 22
    out.append("</svg>")
    return "\n".join(out)


def svg_image(plan: LayoutPlan, title: str) -> str:
    """The chart as a markdown image whose source is a data URI (no SVG markup in the text)."""
    import base64

    data = base64.b64encode(render_svg(plan, title).encode("utf-8")).decode("ascii")
    return f"![{title}](data:image/svg+xml;base64,{data})"


def terminal_bar(bar: Bar, width: int = 60) -> list[tuple[str, str]]:
    """(text, rich style) pieces of one bar in `width` characters; what lies beyond the GPU's
    memory is drawn as '!'."""
    scale = width / max(bar.total + bar.over, 1)
    limit = round(bar.total * scale)
    pieces = []
    pos = 0  # characters drawn; segment ends are rounded cumulatively so the bar is exact
    cumulative = 0
    for key, nbytes in bar.parts:
        cumulative += nbytes
        n = round(cumulative * scale) - pos
        within = max(0, min(n, limit - pos)) if bar.over else n
        if within:
            pieces.append((TERMINAL_CHAR[key] * within, TERMINAL_STYLE[key]))
        if n > within:
            pieces.append(("!" * (n - within), "bold red"))
        pos += n
    if bar.over and pos <= limit:
        pieces.append(("!", "bold red"))
    return pieces


def _label(key: str) -> str:
    return next(label for k, label, _ in SEGMENTS if k == key)
