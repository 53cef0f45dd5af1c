"""`servecheck plan` output: emit (JSON, markdown or terminal text) and the exit code.
JSON in json_out.py, text in text.py, markdown in markdown.py, the words text and markdown
share in words.py (rich is imported only for terminal text)."""

from __future__ import annotations

import argparse

from servecheck.plan.planner import Plan
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json


def emit(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        from servecheck.render.plan.json_out import plan_to_dict

        write_json(plan_to_dict(plan))
    elif args.format == "markdown":
        from servecheck.render.plan.markdown import render_plan_markdown

        write(f"# servecheck plan: {plan.model}\n\n" + render_plan_markdown(plan))
    elif getattr(args, "quiet", False):
        for f in plan.findings:
            if f.severity.value == "error":
                write(f"{f.code} {f.name}: {f.message}")
        if not plan.fits:
            write("No layout of these GPUs fits.")
    else:
        from servecheck.render.plan.text import render_plan_text

        render_plan_text(plan, make_console(), verbose=args.verbose)


def exit_code(plan: Plan) -> int:
    """1 when no layout fits or the plan carries an error finding (as `check` would)."""
    if not plan.fits:
        return exit_codes.PROBLEMS
    return exit_codes.for_findings(plan.findings)
