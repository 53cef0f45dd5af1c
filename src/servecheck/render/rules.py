"""`servecheck rules` output: the list of finding codes, or one rule's documentation."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from servecheck.render.console import make_console, write, write_json


def rule_dict(r: Any) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "severity": r.severity.value,
        "summary": r.summary(),
        "doc": r.doc(),
        "message": r.message,
        "fix": r.fix,
        "vllm_ref": r.vllm_ref,
        "vllm_message": r.vllm_message,
        "exception": r.exception,
    }


def listing(registry: Mapping[str, Any], args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json([rule_dict(r) for r in registry.values()])
    elif args.format == "markdown":
        lines = ["| Code | Name | Severity | Summary |", "|---|---|---|---|"]
        lines += [
            f"| {c} | {r.name} | {r.severity.value} | {r.summary()} |" for c, r in registry.items()
        ]
        write("\n".join(lines))
    elif not getattr(args, "quiet", False):
        from servecheck.render.tables import TextTable

        t = TextTable("Code", "Name", "Severity", "Summary")
        for c, r in registry.items():
            t.add_row(c, r.name, r.severity.value, r.summary())
        make_console().print(t)


def one(r: Any, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(rule_dict(r))
        return
    if args.format == "markdown":
        write(f"# {r.code} {r.name} ({r.severity.value})\n\n{r.doc()}\n\nMirrors: {r.vllm_ref}")
        return
    if getattr(args, "quiet", False):
        return
    console = make_console()
    console.print(f"[bold]{r.code}[/] {r.name} ({r.severity.value})")
    if console.is_terminal:
        from rich.markdown import Markdown

        console.print(Markdown(r.doc()))
    else:  # the documentation as written: headings centred in a wide pipe would read badly
        console.print(r.doc(), markup=False)
    console.print(f"[dim]Mirrors: {r.vllm_ref}[/]", markup=True, highlight=False)
