"""servecheck compare: two checkpoints side by side, families stated, ignore lists by coverage.

Runs `check` on both (folders or config.json files), prints the key architecture and
quantization differences, says whether the two are the same model or different families, and
compares the ignore lists by the modules they make vLLM skip, not by their text.
"""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_gpu, add_verbose, add_version
from servecheck.cli_options.model import add_offline

NAME = "compare"
HELP = "two checkpoints side by side: key differences, model family, ignore lists by coverage"
DESCRIPTION = (
    "Compare two checkpoints: key architecture and quantization differences, whether they are "
    "the same model, and their ignore lists by the modules they cover."
)
EPILOG = """examples:
  servecheck compare examples/glm-4.5-fp8 examples/glm-4.5-air-derestricted-fp8
  servecheck compare ./working ./failing --all --format markdown > compare.md"""
TAKES_VLLM_ARGS = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="first checkpoint: folder, config.json or Hub id")
    p.add_argument("b", metavar="B", help="second checkpoint: folder, config.json or Hub id")
    add_offline(p)
    p.add_argument(
        "--all", action="store_true", help="show identical rows too, not only differences"
    )
    add_gpu(p)
    add_version(p)
    add_format(p)
    add_verbose(p)


def run(args: argparse.Namespace) -> int:
    from servecheck.api import compare
    from servecheck.render import compare as render
    from servecheck.targets import target_from_option

    target = target_from_option(args.gpu, args.gpus)
    comparison = compare(args.a, args.b, vllm_version=args.vllm_version, target=target)
    render.emit(comparison, args)
    return render.exit_code(comparison)
