"""servecheck smoke: predict, then load the model with the installed vLLM and compare."""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_kernel_env, add_vllm_run
from servecheck.cli_options.model import add_model

NAME = "smoke"
HELP = "load it for real with the installed vLLM, generate, and compare with the prediction"
DESCRIPTION = (
    "Predict as `check` does, then start the installed vLLM in a child process (stopped on "
    "timeout or Ctrl-C), load the model, generate a few tokens greedily, and compare what vLLM "
    "did with the prediction field by field. On failure the log is explained. Arguments after "
    "`--` are passed to vLLM as `vllm serve` arguments."
)
EPILOG = """exit codes: 0 = vLLM generated text; 1 = it did not (failed, timed out, no text);
2 = bad input, or no vLLM installed (the message says how to install it); 130 = interrupted

examples:
  servecheck smoke ./my-model
  servecheck smoke ./my-model --record truth/ -- --max-model-len 8192 -tp 2
  servecheck smoke tests/fixtures/checkpoints/llama-bf16 --gpu cpu -- \\
      --tokenizer tests/fixtures/tokenizer --enforce-eager"""
TAKES_VLLM_ARGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    add_vllm_run(p)
    add_format(p)
    add_kernel_env(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from servecheck.api import smoke
    from servecheck.render import smoke as render
    from servecheck.targets import local_target

    status = render.Status(enabled=not getattr(args, "quiet", False))
    try:
        result = smoke(
            args.model,
            target=local_target(args.gpu),
            vllm_args=args.vllm_args,
            python=args.python,
            timeout_s=args.timeout,
            log_path=Path(args.log) if args.log else None,
            record_dir=Path(args.record) if args.record else None,
            kernel_env=args.kernel_env,
            on_prediction=lambda report: render.prediction(report, args),
            on_status=status.update,
        )
    finally:
        status.close()
    render.emit(result, args)
    return result.exit_code
