"""`servecheck compare` output: text (terminal), markdown, JSON; and its exit code."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from servecheck.check_result import CheckResult
from servecheck.compare import Comparison
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json
from servecheck.render.tables import TextTable

if TYPE_CHECKING:
    from rich.console import Console


def emit(c: Comparison, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(comparison_dict(c))
    elif args.format == "markdown":
        write(render_markdown(c, args.all))
    elif not getattr(args, "quiet", False):
        render_text(c, make_console(), args.all, args.verbose)


def comparison_dict(c: Comparison) -> dict:
    """JSON view (field names are a contract: extend, don't rename)."""
    return {
        "a": {"location": c.a.location, "family": _family(c.a), "verdict": c.a.verdict},
        "b": {"location": c.b.location, "family": _family(c.b), "verdict": c.b.verdict},
        "relation": c.relation,
        "different_models": c.different_models,
        "statement": c.statement,
        "rows": [r.as_dict() for r in c.rows],
        "ignore": c.ignore.as_dict(),
        "ignore_statement": c.ignore_statement,
    }


def _family(r: CheckResult) -> str | None:
    return r.family.name if r.family else None


def exit_code(c: Comparison) -> int:
    """1 when either checkpoint has error findings (what `check` on it would say)."""
    return max(exit_codes.for_verdict(c.a.verdict), exit_codes.for_verdict(c.b.verdict))


def render_text(c: Comparison, console: Console, all_rows: bool, verbose: bool) -> None:
    from rich.text import Text

    console.print(Text.assemble(("A  ", "bold"), c.a.location))
    console.print(Text.assemble(("B  ", "bold"), c.b.location))
    console.print()
    style = "bold yellow" if c.different_models else "bold green"
    console.print(Text(("⚠ " if c.different_models else "✓ ") + c.statement, style=style))
    console.print()
    title = "Key differences" if not all_rows else "Side by side"
    t = TextTable("Parameter", "A", "B", "Note", title=title)
    hidden = 0
    for r in c.rows:
        if not r.differs and not all_rows:
            hidden += 1
            continue
        st = "bold" if r.differs else ""
        t.add_row(r.key, Text(r.a, style=st), Text(r.b, style=st), r.note)
    console.print(t)
    if hidden:
        console.print(Text(f"({hidden} identical rows hidden; --all shows them)", style="dim"))
    ign = c.ignore
    console.print(Text("\nIgnore lists, by the modules they cover", style="bold"))
    it = TextTable("", "A>", "B>")
    it.add_row("entries", str(ign.a.entries), str(ign.b.entries))
    it.add_row("modules vLLM skips because of it", str(len(ign.a.covered)), str(len(ign.b.covered)))
    it.add_row("resolutions it changes", str(len(ign.a.effect)), str(len(ign.b.effect)))
    it.add_row(
        "entries naming things never quantized",
        str(ign.a.unconsulted_entries),
        str(ign.b.unconsulted_entries),
    )
    it.add_row("entries matching no name", str(ign.a.nothing_entries), str(ign.b.nothing_entries))
    for kind in sorted(set(ign.a.by_kind) | set(ign.b.by_kind)):
        ca, ta = ign.a.by_kind.get(kind, (0, 0))
        cb, tb = ign.b.by_kind.get(kind, (0, 0))
        if ca or cb or verbose:
            it.add_row(f"  covered {kind}", f"{ca}/{ta}", f"{cb}/{tb}")
    console.print(it)
    same = ign.same_coverage and ign.same_effect
    console.print(Text(c.ignore_statement, style="green" if same else "yellow"))
    if verbose:
        for label, names in (
            ("covered only by A", ign.only_a),
            ("covered only by B", ign.only_b),
            ("changed only by A", ign.effect_only_a),
            ("changed only by B", ign.effect_only_b),
        ):
            if names:
                console.print(Text(f"  {label}: {', '.join(names[:30])}", style="dim"))


def render_markdown(c: Comparison, all_rows: bool = False) -> str:
    a_name = _label(c.a.location, c.a.family.name if c.a.family else None)
    b_name = _label(c.b.location, c.b.family.name if c.b.family else None)
    out = [f"# servecheck compare: {a_name} vs {b_name}", ""]
    out += [f"- **A**: `{c.a.location}`", f"- **B**: `{c.b.location}`", ""]
    out += [("> ⚠️ " if c.different_models else "> ✅ ") + c.statement, ""]
    out += ["## Key Differences", "", f"| Parameter | {a_name} (A) | {b_name} (B) | Note |"]
    out.append("|---|---|---|---|")
    for r in c.rows:
        if not r.differs and not all_rows:
            continue
        b_cell = f"**{r.b}**" if r.differs else r.b
        out.append(f"| `{r.key}` | {r.a} | {b_cell} | {r.note} |")
    ign = c.ignore
    out += ["", "## Ignore lists by coverage", "", "| | A | B |", "|---|---:|---:|"]
    out.append(f"| entries | {ign.a.entries} | {ign.b.entries} |")
    out.append(f"| modules vLLM skips | {len(ign.a.covered)} | {len(ign.b.covered)} |")
    out.append(f"| resolutions changed | {len(ign.a.effect)} | {len(ign.b.effect)} |")
    out.append(
        f"| entries naming things never quantized | {ign.a.unconsulted_entries} | "
        f"{ign.b.unconsulted_entries} |"
    )
    out.append(f"| entries matching no name | {ign.a.nothing_entries} | {ign.b.nothing_entries} |")
    out += ["", c.ignore_statement, ""]
    return "\n".join(out)


def _label(location: str, family: str | None) -> str:
    return family or Path(location).name
