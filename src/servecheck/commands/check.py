"""servecheck check: resolve every module the way vLLM will, audit the checkpoint, report."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from servecheck.commands.options import (
    FormatOpt,
    GpuOpt,
    GpusOpt,
    KernelEnvOpt,
    ModelArg,
    OutputFormat,
    VerboseOpt,
    VllmVersionOpt,
    fail_usage,
)

EPILOG = (
    "Examples:\n\n  servecheck check examples/glm-4.5-air-derestricted-fp8\n\n"
    "  servecheck check ./my-model --gpu 'RTX PRO 6000' --format markdown > report.md"
)


def check(
    model: ModelArg,
    gpu: GpuOpt = None,
    gpus: GpusOpt = 1,
    vllm_version: VllmVersionOpt = None,
    output: FormatOpt = OutputFormat.text,
    verbose: VerboseOpt = False,
    kernel_env: KernelEnvOpt = None,
) -> None:
    """Resolve every module the way vLLM will, audit the checkpoint, report what will fail."""
    from servecheck.api import check as run_check
    from servecheck.errors import InputError
    from servecheck.targets import target_from_option

    try:
        target = target_from_option(gpu, gpus)
        report = run_check(
            model, vllm_version=vllm_version, target=target, kernel_env=kernel_env or ()
        )
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
