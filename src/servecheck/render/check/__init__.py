"""`servecheck check` output: text (terminal), markdown, JSON; and its exit code."""

from __future__ import annotations

import argparse

from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json
from servecheck.report import CheckReport


def emit(report: CheckReport, args: argparse.Namespace) -> None:
    if args.format == "json":
        from servecheck.render.check.json_out import to_dict

        write_json(to_dict(report))
    elif args.format == "markdown":
        from servecheck.render.check.markdown import render_markdown

        write(render_markdown(report))
    elif getattr(args, "quiet", False):
        _errors_only(report)
    else:
        from servecheck.render.check.text import render_text

        render_text(report, make_console(), verbose=args.verbose)


def _errors_only(report: CheckReport) -> None:
    for f in report.findings:
        if f.severity.value == "error":
            write(f"{f.code} {f.name}: {f.message}")


def exit_code(report: CheckReport) -> int:
    return exit_codes.for_verdict(report.verdict)
