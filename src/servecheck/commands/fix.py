"""servecheck fix: propose a corrected config.json ignore list, verified, never touching weights.

Shows the proposed ignore list, why each entry is kept or refused, the check before and after,
and a unified diff of config.json. `--write` replaces config.json atomically and keeps
config.json.orig; `--out DIR` writes an overlay folder (new config.json, links to the rest)
that vLLM loads directly.
"""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_gpu, add_verbose, add_version
from servecheck.cli_options.model import add_model

NAME = "fix"
HELP = "what should I change? a corrected config.json ignore list, verified by re-checking"
DESCRIPTION = (
    "Propose a corrected config.json ignore list from the checkpoint's headers, verified by "
    "re-checking; shows a diff by default and never touches the weights."
)
EPILOG = """examples:
  servecheck fix ./my-model
  servecheck fix ./my-model --out ./my-model-fixed    (overlay folder for vLLM)
  servecheck fix ./my-model --write                   (keeps config.json.orig)
  servecheck fix examples/glm-4.5-fp8 --strategy explicit"""
TAKES_VLLM_ARGS = False
STRATEGIES = ("checkpoint", "conventional", "explicit")
EARLIER_NAMES = ("safe", "comprehensive")  # of conventional and explicit, still accepted


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument(
        "--strategy",
        choices=STRATEGIES + EARLIER_NAMES,
        default="checkpoint",
        metavar="NAME",
        help="checkpoint: exactly the layers stored unquantized that the config would quantize, "
        "from the safetensors headers; conventional: also lm_head, the embedding and the final "
        "norm; explicit: also every norm, bias and router gate by name (default: checkpoint)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--write", action="store_true", help="replace config.json atomically, keeping .orig"
    )
    out.add_argument("--out", metavar="DIR", help="write an overlay folder: config.json + links")
    p.add_argument("--force", action="store_true", help="overwrite config.json.orig or links")
    add_gpu(p)
    add_version(p)
    add_format(p)
    add_verbose(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from servecheck.api import fix
    from servecheck.render import fix as render
    from servecheck.targets import target_from_option

    outcome = fix(
        args.model,
        args.strategy,
        vllm_version=args.vllm_version,
        target=target_from_option(args.gpu, args.gpus),
        write=args.write,
        out=Path(args.out) if args.out else None,
        force=args.force,
    )
    render.emit(outcome, args)
    return render.exit_code(outcome)
