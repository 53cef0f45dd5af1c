"""`servecheck explain` output: text (terminal) and JSON; and its exit code."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from servecheck.explain import Explanation
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write_json

if TYPE_CHECKING:
    from rich.console import Console


def emit(expl: Explanation, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(to_dict(expl))
    elif not getattr(args, "quiet", False):
        render_text(expl, make_console())


def to_dict(expl: Explanation) -> dict[str, Any]:
    """JSON form of an explanation. Field names are a contract: extend, never rename."""
    from servecheck.findings.rules import all_rules

    registry = all_rules()
    data: dict[str, Any] = {
        "matched": expl.matched,
        "root_error": expl.root.as_dict() if expl.root else None,
    }
    if expl.match is not None:
        m = expl.match
        data["signature"] = m.signature.as_dict()
        data["detail"] = m.detail()
        data["fields"] = dict(m.fields)
        data["evidence"] = {"where": m.where, "line": m.line, "text": m.raw.strip()}
        data["findings"] = [
            {
                "code": code,
                "name": registry[code].name if code in registry else None,
                "summary": registry[code].summary() if code in registry else None,
            }
            for code in m.signature.finding
        ]
        data["alternatives"] = [
            {"id": a.signature.id, "where": a.where, "line": a.line} for a in expl.alternatives
        ]
    else:
        data["signature"] = None
        data["message"] = "no known signature"
        data["root_guess"] = (
            {"line": expl.guess.number, "text": expl.guess.raw.strip()} if expl.guess else None
        )
    return data


def exit_code(expl: Explanation) -> int:
    """0 = a known signature matched; 1 = none matched (nothing found where it was asked)."""
    return exit_codes.found(expl.matched)


def render_text(expl: Explanation, console: Console) -> None:

    from rich.markup import escape

    from servecheck.findings.rules import all_rules

    if expl.match is None:
        console.print("[bold yellow]no known signature[/]")
        if expl.guess is not None:
            console.print(f"Most likely root error (line {expl.guess.number}):")
            console.print(f"  {escape(expl.guess.raw.strip())}", highlight=False)
        else:
            console.print("No line in the input looks like an error.")
        return
    m = expl.match
    sig = m.signature
    console.print(f"[bold]{escape(sig.title)}[/]  [dim]({sig.id})[/]")
    where = {"root": "root error", "error": "earlier error", "log": "log line"}[m.where]
    console.print(f"[dim]Matched the {where} at line {m.line}:[/]")
    console.print(f"  {escape(m.raw.strip())}", highlight=False)
    if m.where != "root" and expl.root is not None:
        console.print(f"[dim]Root error (line {expl.root.number}):[/] {escape(expl.root.text)}")
    detail = m.detail()
    if detail:
        console.print(f"[bold]Detail:[/] {escape(detail)}")
    console.print(f"[bold]Cause:[/] {escape(sig.cause)}")
    console.print(f"[bold green]Fix:[/] {escape(sig.fix)}")
    if sig.finding:
        registry = all_rules()
        for code in sig.finding:
            name = registry[code].name if code in registry else "?"
            console.print(
                f"[bold]Predicted by:[/] {code} {name} "
                f"[dim](`servecheck rules {code}`; `servecheck check MODEL` finds it before "
                "loading)[/]"
            )
    console.print(f"[dim]vLLM source: {escape(sig.vllm_source)}[/]")
    for ref in sig.refs:
        console.print(f"[dim]See: {ref}[/]", highlight=False)
    if expl.alternatives:
        others = ", ".join(a.signature.id for a in expl.alternatives)
        console.print(f"[dim]Also matched: {others}[/]")
