"""`servecheck smoke` output: the live status line, then the comparison (text, markdown, JSON).

The status goes to standard error: one line rewritten in place on a terminal, one line per step
otherwise (a CI log). The result goes to standard output.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from servecheck.render.console import make_console, write, write_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from servecheck.check_result import CheckResult
    from servecheck.smoke.compare import Row
    from servecheck.smoke.result import SmokeResult

MARKS = {True: "✓", False: "✗", None: "·"}
OUTCOME_WORDS = {
    "generated": "vLLM loaded the model and generated text",
    "loaded": "vLLM loaded the model but returned no text",
    "failed": "vLLM failed",
    "timeout": "vLLM did not finish in time and was stopped",
    "interrupted": "interrupted; vLLM was stopped",
    "crashed": "the vLLM process died without reporting",
}


class Status:
    """The one-line live status on standard error."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = _isatty()
        self.t0 = time.monotonic()
        self.last = ""
        self.width = 0

    def update(self, phrase: str) -> None:
        if not self.enabled or phrase == self.last:
            return
        self.last = phrase
        line = f"vLLM [{time.monotonic() - self.t0:5.0f} s] {phrase}"
        if self.tty:
            pad = max(self.width - len(line), 0)
            sys.stderr.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def prediction(report: CheckResult, args: argparse.Namespace) -> None:
    """Said before vLLM starts (standard error, so JSON on standard output stays clean)."""
    if getattr(args, "quiet", False):
        return
    # memory and context are judged later, for the settings vLLM resolves from the arguments
    planned = {id(f) for f in (report.plan.findings if report.plan else ())}
    errors = [f for f in report.findings if f.severity.value == "error" and id(f) not in planned]
    v = report.version
    shown = v.requested if v.exact else f"{v.requested} (checked as {v.effective})"
    said = f"predicted for vLLM {shown} on {report.target.name}: "
    levels = {f.severity.value for f in report.findings if id(f) not in planned}
    said += "fail" if errors else "warn" if "warning" in levels else "ok"
    if errors:
        said += " (" + ", ".join(sorted({f.code for f in errors})) + ")"
    if report.plan is not None:
        said += "; memory and context are checked once vLLM has read the arguments"
    sys.stderr.write(said + "\n")
    sys.stderr.flush()


def emit(result: SmokeResult, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(result.as_dict())
    elif args.format == "markdown":
        write(render_markdown(result))
    elif getattr(args, "quiet", False):
        if not result.run.generated:
            write(f"{OUTCOME_WORDS[result.run.outcome]} (log: {result.run.log_path})")
    else:
        render_text(result, make_console())


def render_text(result: SmokeResult, console: Console) -> None:
    from rich.markup import escape

    from servecheck.render.tables import TextTable

    run = result.run
    console.print(f"[bold]{escape(result.report.location)}[/] with vLLM {result.install.version}")
    console.print(f"  {escape(result.command)}", highlight=False)
    style = "green" if run.generated else "red"
    console.print(f"[bold {style}]{OUTCOME_WORDS[run.outcome]}[/] after {run.wall_s:.0f} s")
    text = (run.result.get("generated") or {}).get("text")
    if run.generated:
        console.print(f"  generated: {text!r}", highlight=False)
    for name in run.args_info.get("not_applied") or ():
        console.print(f"  note: --{name.replace('_', '-')} applies to the HTTP server only")
    table = TextTable("", "field", "servecheck predicted", "vLLM did")
    for row in result.comparison.rows:
        table.add_row(_mark(row), row.field, escape(row.predicted), escape(_observed(row)))
    console.print()
    console.print(table)
    c = result.comparison
    console.print(
        f"\n{c.agreed} of {c.compared} compared fields agree"
        + (f"; {len(c.rows) - c.compared} not compared" if len(c.rows) > c.compared else "")
    )
    _root_cause(result, console)
    console.print(f"[dim]full log: {escape(str(run.log_path))}[/]")
    if result.record_path:
        console.print(f"record written: {escape(str(result.record_path))}")


def _mark(row: Row) -> Text:
    from rich.text import Text

    style = {True: "green", False: "bold red", None: "dim"}[row.agree]
    return Text(MARKS[row.agree], style=style)


def _observed(row: Row) -> str:
    return f"{row.observed}  ({row.note})" if row.note else row.observed


def _root_cause(result: SmokeResult, console: Console) -> None:
    from rich.markup import escape

    rc = result.root_cause
    if rc is None:
        return
    console.print()
    console.print(f"[bold]root cause:[/] {escape(rc.title or 'not a known failure')}")
    if rc.root_line:
        console.print(f"  {escape(rc.root_line[:600])}", highlight=False)
    if rc.cause:
        console.print(f"  cause: {escape(rc.cause)}")
    if rc.fix:
        console.print(f"  fix: {escape(rc.fix)}")
    if rc.predicted_by is not None:
        f = rc.predicted_by
        console.print(f"  [green]predicted by {f.code}[/] ({escape(f.name)}): {escape(f.message)}")
    else:
        console.print("  [yellow]nothing in the prediction named this failure[/]")


def render_markdown(result: SmokeResult) -> str:
    run, c = result.run, result.comparison
    lines = [
        f"# servecheck smoke: {result.report.location}",
        "",
        f"`{result.command}` with vLLM {result.install.version}: "
        f"**{OUTCOME_WORDS[run.outcome]}** after {run.wall_s:.0f} s.",
        "",
        "| | field | servecheck predicted | vLLM did |",
        "|---|---|---|---|",
    ]
    for row in c.rows:
        cells = (MARKS[row.agree], row.field, row.predicted, _observed(row))
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    lines += ["", f"{c.agreed} of {c.compared} compared fields agree.", ""]
    rc = result.root_cause
    if rc is not None:
        lines.append(f"**Root cause:** {rc.title or 'not a known failure'}")
        if rc.root_line:
            lines += ["", "```", rc.root_line[:600], "```"]
        by = rc.predicted_by
        lines += ["", f"Predicted by {by.code}: {by.message}" if by else "Nothing predicted it."]
    lines += ["", f"Full log: `{run.log_path}`"]
    return "\n".join(lines) + "\n"
