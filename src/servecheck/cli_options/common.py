"""Options several commands share: target GPU, vLLM release, kernel environment, output
format, verbosity, and the options of a command that runs vLLM."""

from __future__ import annotations

import argparse

from servecheck.cli_options.values import gpu_count, positive_int

FORMATS = ("text", "json", "markdown")


def add_gpu(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu",
        metavar="NAME",
        help="target GPU name (e.g. 'RTX PRO 6000', 'H100'), 'auto' to detect the local GPU, "
        "or 'cpu' for vLLM's CPU backend",
    )
    p.add_argument(
        "--gpus", type=gpu_count, default=1, metavar="N", help="number of GPUs (default: 1)"
    )


def add_version(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vllm-version",
        metavar="V",
        help="vLLM release to predict for (default: the installed vllm, else the newest release "
        "servecheck has checked against vLLM's sources)",
    )


def add_kernel_env(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kernel-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="kernel environment assumed with --gpu (repeatable, comma-separated): cuda=12.8, "
        "deep_gemm=0, flashinfer=0, b12x=1, VLLM_USE_DEEP_GEMM=0, amx=1 (CPU); default: the "
        "official vLLM wheel's",
    )


def add_format(p: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    p.add_argument(
        "-f",
        "--format",
        choices=formats,
        default="text",
        metavar="FORMAT",
        help=f"output format: {', '.join(formats)} (default: text)",
    )


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show info findings, sources and affected modules",
    )


def add_vllm_run(p: argparse.ArgumentParser) -> None:
    """Options of a command that runs the installed vLLM (smoke)."""
    p.add_argument(
        "--gpu",
        default="auto",
        metavar="NAME",
        help="what vLLM runs on, for the prediction: 'auto' (the local GPU, else vLLM's CPU "
        "backend), 'cpu', or a GPU name (default: auto)",
    )
    p.add_argument(
        "--python",
        metavar="PATH",
        help="a Python that has vLLM (default: this one, else the `vllm` command's)",
    )
    p.add_argument(
        "--timeout",
        type=positive_int,
        metavar="S",
        help="seconds before vLLM is stopped (default: from the model's size)",
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="where to keep vLLM's full log (default: ~/.cache/servecheck/smoke/MODEL-TIME.log)",
    )
    p.add_argument(
        "--record",
        metavar="DIR",
        help="also write the run as a truth record (tests/data/gpu_truth schema) into DIR",
    )
