"""Options shared by the commands (argparse helpers; nothing heavy is imported here)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

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


MODEL_HELP = (
    "checkpoint folder (config.json + *.safetensors), a config.json file, or a Hub model "
    "org/name[@revision] (also hf://org/name): the Hugging Face cache is used when it holds "
    "the model, else its config and safetensors headers are read from the Hub, never weights"
)


def add_model(p: argparse.ArgumentParser, from_command: bool = False) -> None:
    """MODEL (and --revision, --offline); with `from_command` MODEL may be left out when the
    `vllm serve` command after `--` names it."""
    if from_command:
        p.add_argument(
            "model",
            metavar="MODEL",
            nargs="?",
            help=MODEL_HELP + "; may be left out when the command after '--' names it",
        )
    else:
        p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--revision",
        metavar="REV",
        help="for a Hub model: branch, tag or commit (same as MODEL@REV; default: main)",
    )
    add_offline(p)


def add_offline(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="no network: read Hub models from the Hugging Face cache and servecheck's header "
        "cache only, as HF_HUB_OFFLINE=1 does",
    )


@contextmanager
def model_reading(args: argparse.Namespace) -> Iterator[None]:
    """Apply --revision and --offline, and show a progress bar on stderr while Hub headers
    are fetched (only on a terminal, and never with --quiet)."""
    from servecheck.render.progress import header_progress
    from servecheck.source.resolve import reading

    revision = getattr(args, "revision", None)
    if revision:
        args.model = with_revision(args.model, revision)
    progress = header_progress(quiet=getattr(args, "quiet", False))
    with reading(offline=getattr(args, "offline", None), progress=progress):
        yield


def with_revision(model: str, revision: str) -> str:
    """MODEL with --revision folded in as MODEL@REV (an InputError for local paths)."""
    from servecheck.errors import InputError
    from servecheck.source.modelref import HF_SCHEME, hub_ref, looks_like_path

    if not model.startswith(HF_SCHEME) and looks_like_path(model):
        raise InputError(f"--revision applies to Hub models; {model} is a local path")
    ref = hub_ref(model, revision)
    if ref is None:
        raise InputError(f"--revision applies to Hub models; {model} is not org/name")
    return (HF_SCHEME if model.startswith(HF_SCHEME) else "") + str(ref)


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


def launch_of(args: argparse.Namespace) -> list[str] | None:
    """The `vllm serve` arguments (or pasted command) after `--`, if any; MODEL or the command
    must name the model."""
    if args.vllm_args:
        return list(args.vllm_args)
    if args.model is None:
        from servecheck.errors import InputError

        raise InputError(
            f"servecheck {args.command}: name MODEL, or give a vllm serve command after '--'"
        )
    return None


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
