"""MODEL and how it is read: --revision, --offline, the launch command after `--`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

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
