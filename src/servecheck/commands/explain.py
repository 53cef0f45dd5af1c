"""servecheck explain: match a vLLM log or traceback against known error signatures."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from servecheck.commands.options import fail_usage

if TYPE_CHECKING:
    from servecheck.explain import Explanation

EPILOG = (
    "Exit codes: 0 = a known signature matched, 1 = no known signature (the line that looks "
    "most like the root error is printed), 2 = the input cannot be read.\n\n"
    "Examples:\n\n  servecheck explain vllm.log\n\n"
    "  vllm serve ./model 2>&1 | tail -n 300 | servecheck explain --format json"
)


class ExplainFormat(str, Enum):
    text = "text"
    json = "json"


def explain(
    log: Annotated[
        str | None,
        typer.Argument(help="Log or traceback file; '-' or omitted reads standard input."),
    ] = None,
    output: Annotated[
        ExplainFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ExplainFormat.text,
) -> None:
    """Explain a vLLM error: root error, cause, fix, and the finding that predicts it."""
    from servecheck.explain import explain_text, to_dict

    text = _read(log)
    expl = explain_text(text)
    if output is ExplainFormat.json:
        sys.stdout.write(json.dumps(to_dict(expl), indent=2) + "\n")
    else:
        _render(expl, Console(soft_wrap=True))
    raise typer.Exit(0 if expl.matched else 1)


def _read(log: str | None) -> str:
    if log is None or log == "-":
        try:
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        except OSError as exc:
            fail_usage(f"cannot read standard input: {exc}")
            return ""
    else:
        path = Path(log)
        if not path.is_file():
            fail_usage(f"{log}: no such file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            fail_usage(f"cannot read {log}: {exc.strerror or exc}")
            return ""
    if isinstance(data, bytes):
        if b"\x00" in data[:8192]:
            fail_usage(f"{log or 'standard input'} is not a text log")
        return data.decode("utf-8", errors="replace")
    return data


def _render(expl: Explanation, console: Console) -> None:
    from rich.markup import escape

    from servecheck.findings.catalog import all_rules

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
