"""servecheck plan: which tensor/pipeline/expert-parallel layouts fit, and the launch command."""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_kernel_env, add_verbose, add_version
from servecheck.cli_options.model import add_model, launch_of
from servecheck.cli_options.serve import add_serve_options
from servecheck.cli_options.values import gpu_count

NAME = "plan"
HELP = "how should it be launched? every TP/PP/EP layout, KV capacity, a vllm serve command"
DESCRIPTION = (
    "Plan memory and parallelism: every valid TP/PP/EP layout, whether it fits, KV capacity, "
    "longest context, concurrency, and a `vllm serve` command for the best one."
)
EPILOG = """examples:
  servecheck plan examples/glm-4.5-air-derestricted-fp8 --gpu 'RTX PRO 6000' \\
      --gpus 2
  servecheck plan ./DeepSeek-V3 --gpu H100 --gpus 8 --nodes 2 \\
      --max-model-len 32768 --format markdown > plan.md
  servecheck plan meta-llama/Llama-3.1-8B --gpu H100 --gpus 8 -- \\
      --max-model-len 32k

arguments after '--' are vLLM's own and constrain the plan: -tp/-pp/-dp/-ep fix those sizes,
serving options (--max-model-len, --kv-cache-dtype, ...) replace the ones above."""
TAKES_VLLM_ARGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, from_command=True)
    p.add_argument("--gpu", required=True, metavar="NAME", help="GPU name (e.g. 'H100', 'L4')")
    p.add_argument("--gpus", type=gpu_count, default=1, metavar="N", help="GPUs per node")
    p.add_argument("--nodes", type=gpu_count, default=1, metavar="M", help="nodes (Ray)")
    add_serve_options(p)
    add_version(p)
    add_kernel_env(p)
    add_format(p)
    add_verbose(p)


def run(args: argparse.Namespace) -> int:
    from servecheck.api import plan_model
    from servecheck.cli_options.serve import serve_options
    from servecheck.render import plan as render

    serve = serve_options(args)
    launch = launch_of(args)
    result = plan_model(
        args.model,
        launch=launch,
        gpu=args.gpu,
        gpus=args.gpus,
        nodes=args.nodes,
        options=serve,
        vllm_version=args.vllm_version,
        kernel_env=args.kernel_env,
    )
    render.emit(result, args)
    return render.exit_code(result)
