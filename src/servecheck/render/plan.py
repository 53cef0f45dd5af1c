"""`servecheck plan` output: text (terminal), markdown, JSON; and its exit code."""

from __future__ import annotations

import argparse

from servecheck.plan.planner import Plan
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json


def emit(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        from servecheck.plan.report import plan_to_dict

        write_json(plan_to_dict(plan))
    elif args.format == "markdown":
        from servecheck.plan.report import render_plan_markdown

        write(f"# servecheck plan: {plan.model}\n\n" + render_plan_markdown(plan))
    elif getattr(args, "quiet", False):
        for f in plan.findings:
            if f.severity.value == "error":
                write(f"{f.code}: {f.message}")
        if not plan.fits:
            write("No layout of these GPUs fits.")
    else:
        from servecheck.plan.report import render_plan_text

        render_plan_text(plan, make_console(), verbose=args.verbose)


def exit_code(plan: Plan) -> int:
    """1 when no layout fits or the plan carries an error finding (as `check` would)."""
    if not plan.fits:
        return exit_codes.PROBLEMS
    return exit_codes.for_findings(plan.findings)
