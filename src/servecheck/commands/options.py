"""Options and helpers shared by the commands (typer Annotated aliases, one error path)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


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
KernelEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kernel-env",
        help="Kernel environment assumed with --gpu (repeatable, comma-separated): cuda=12.8, "
        "deep_gemm=0, flashinfer=0, b12x=1, VLLM_USE_DEEP_GEMM=0, amx=1 (CPU). Default: the "
        "official vLLM wheel's.",
    ),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show info findings, sources and affected modules.")
]

err_console = Console(stderr=True, soft_wrap=True)


def fail_usage(message: str) -> None:
    """Print one sentence and exit 2 (bad input or usage)."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)
