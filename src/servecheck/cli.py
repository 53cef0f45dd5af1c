"""servecheck command line.

    servecheck check MODEL [--gpu NAME|auto|cpu] [--vllm-version V] [--format text|json|markdown]
    servecheck rules [CODE]

Exit codes: 0 = no error findings, 1 = error findings, 2 = bad input or usage.
Heavy modules are imported inside commands so that `servecheck --help` starts fast.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="servecheck",
    help="Will this checkpoint load, fit and run under vLLM? Answers from config.json and "
    "safetensors headers, before you download or load any weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


ModelArg = Annotated[
    Path,
    typer.Argument(help="Checkpoint folder (config.json + *.safetensors) or a config.json file."),
]
VllmVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--vllm-version",
        help="vLLM release to predict for (default: the installed vllm, else 0.33.0).",
    ),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
GpuOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help="Target GPU name (e.g. 'RTX PRO 6000', 'H100'), 'auto' to detect "
        "the local GPU, or 'cpu' for vLLM's CPU backend.",
    ),
]
GpusOpt = Annotated[int, typer.Option("--gpus", min=1, help="Number of GPUs.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show info findings, sources and affected modules.")
]

err_console = Console(stderr=True, soft_wrap=True)


def fail_usage(message: str) -> None:
    """Print one sentence and exit 2 (bad input or usage)."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command(
    epilog="Examples:\n\n  servecheck check examples/glm-4.5-air-derestricted-fp8\n\n"
    "  servecheck check ./my-model --gpu 'RTX PRO 6000' --format markdown > report.md"
)
def check(
    model: ModelArg,
    gpu: GpuOpt = None,
    gpus: GpusOpt = 1,
    vllm_version: VllmVersionOpt = None,
    output: FormatOpt = OutputFormat.text,
    verbose: VerboseOpt = False,
) -> None:
    """Resolve every module the way vLLM will, audit the checkpoint, report what will fail."""
    from servecheck.api import check as run_check
    from servecheck.errors import InputError
    from servecheck.targets import target_from_option

    try:
        target = target_from_option(gpu, gpus)
        report = run_check(model, vllm_version=vllm_version, target=target)
    except InputError as exc:
        fail_usage(str(exc))
        return
    console = Console()
    if output is OutputFormat.json:
        from servecheck.report.json_out import render_json

        sys.stdout.write(render_json(report) + "\n")
    elif output is OutputFormat.markdown:
        from servecheck.report.markdown import render_markdown

        sys.stdout.write(render_markdown(report))
    else:
        from servecheck.report.text import render_text

        render_text(report, console, verbose=verbose)
    raise typer.Exit(1 if report.verdict == "fail" else 0)


@app.command()
def rules(
    code: Annotated[str | None, typer.Argument(help="A finding code, e.g. R001.")] = None,
) -> None:
    """List the finding codes, or explain one (why it matters, an example, the fix)."""
    from rich.markdown import Markdown
    from rich.table import Table

    from servecheck.checks.registry import all_rules

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
