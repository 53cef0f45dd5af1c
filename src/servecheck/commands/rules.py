"""servecheck rules: list the finding codes, or explain one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from servecheck.commands.options import fail_usage


def rules(
    code: Annotated[str | None, typer.Argument(help="A finding code, e.g. R001.")] = None,
) -> None:
    """List the finding codes, or explain one (why it matters, an example, the fix)."""
    from rich.markdown import Markdown
    from rich.table import Table

    from servecheck.findings.catalog import all_rules

    registry = all_rules()
    console = Console()
    if code is None:
        table = Table("Code", "Name", "Severity", "Summary")
        for c, r in registry.items():
            table.add_row(c, r.name, r.severity.value, r.summary())
        console.print(table)
        return
    key = code.upper()
    if key not in registry:
        by_name = {r.name: c for c, r in registry.items()}
        if code in by_name:
            key = by_name[code]
        else:
            fail_usage(f"unknown rule {code!r}; `servecheck rules` lists them")
    r = registry[key]
    console.print(f"[bold]{r.code}[/] {r.name} ({r.severity.value})")
    console.print(Markdown(r.doc()))
    console.print(f"[dim]Mirrors: {r.vllm_ref}[/]", markup=True, highlight=False)
