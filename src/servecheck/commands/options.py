"""Options shared by the commands (argparse helpers; nothing heavy is imported here)."""

from __future__ import annotations

import argparse

FORMATS = ("text", "json", "markdown")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose to the terminal; keeps indented lines (the examples) exactly as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                out.append(
                    textwrap.fill(
                        " ".join(prose), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
                prose.clear()

        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                flush()
                out.append(indent + line)
            else:
                prose.append(line.strip())
        flush()
        return "\n".join(out)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.01 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0.01 and 1")
    return value


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="checkpoint folder (config.json + *.safetensors) or a config.json file",
    )


def add_gpu(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu",
        metavar="NAME",
        help="target GPU name (e.g. 'RTX PRO 6000', 'H100'), 'auto' to detect the local GPU, "
        "or 'cpu' for vLLM's CPU backend",
    )
    p.add_argument(
        "--gpus", type=positive_int, default=1, metavar="N", help="number of GPUs (default: 1)"
    )


def add_version(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vllm-version",
        metavar="V",
        help="vLLM release to predict for (default: the installed vllm, else 0.33.0)",
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


def note_vllm_args(args: argparse.Namespace) -> None:
    """Arguments after `--` are kept in args.vllm_args; until they are interpreted, say so."""
    if args.vllm_args and not getattr(args, "quiet", False):
        import sys

        shown = " ".join(args.vllm_args)
        sys.stderr.write(
            f"note: the vLLM arguments after '--' ({shown}) are not taken into account yet\n"
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
