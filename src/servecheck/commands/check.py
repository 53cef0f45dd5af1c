"""servecheck check: resolve every module the way vLLM will, audit the checkpoint, report."""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import (
    add_format,
    add_gpu,
    add_kernel_env,
    add_verbose,
    add_version,
)
from servecheck.cli_options.model import add_model, launch_of

NAME = "check"
HELP = "will it load? every module resolved as vLLM resolves it, the checkpoint audited"
DESCRIPTION = (
    "Resolve every module the way vLLM will, audit the checkpoint from its safetensors "
    "headers, pick the kernel each layer gets on the GPU, and (with --gpu) say whether it fits."
)
EPILOG = """examples:
  servecheck check examples/glm-4.5-air-derestricted-fp8
  servecheck check ./my-model --gpu 'RTX PRO 6000' --format markdown > report.md
  servecheck check ./my-model --gpu H100 --gpus 2 -- --max-model-len 32768
  servecheck check --gpu H200 -- vllm serve Qwen/Qwen3-30B-A3B-FP8 -tp 2 \\
      --max-model-len 32k

arguments after '--' are read as vLLM's own (the release's names, aliases and value syntax):
the arguments alone, or a pasted `vllm serve MODEL ...`, `python -m
vllm.entrypoints.openai.api_server ...`, `docker run ... vllm/vllm-openai ...` or `LLM(...)`."""
TAKES_VLLM_ARGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, from_command=True)
    add_gpu(p)
    add_version(p)
    add_format(p)
    add_verbose(p)
    add_kernel_env(p)


def run(args: argparse.Namespace) -> int:
    from servecheck.api import check
    from servecheck.render import check as render
    from servecheck.targets import target_from_option

    launch = launch_of(args)
    target = target_from_option(args.gpu, args.gpus)
    report = check(
        args.model,
        launch=launch,
        vllm_version=args.vllm_version,
        target=target,
        kernel_env=args.kernel_env,
        propose_fix=args.format == "markdown",  # the markdown report's action plan
    )
    render.emit(report, args)
    return render.exit_code(report)
