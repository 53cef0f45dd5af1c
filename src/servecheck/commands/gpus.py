"""servecheck gpus: the GPU table, one GPU in detail, or the GPUs of this machine."""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_version

NAME = "gpus"
HELP = "the GPU table and what vLLM runs on each GPU; --detect for this machine's GPUs"
DESCRIPTION = (
    "List the GPUs servecheck knows (compute capability, memory, FP8/FP4, CUDA minimum), show "
    "one with the kernel vLLM picks for each quantization scheme, or detect this machine's."
)
EPILOG = """exit codes: 0 = shown; 1 = --detect found no GPU; 2 = unknown GPU name or bad usage

examples:
  servecheck gpus
  servecheck gpus --gpu 'rtx pro 6000'
  servecheck gpus --detect --format json"""
TAKES_VLLM_ARGS = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--gpu", metavar="NAME", help="show one GPU (forgiving match: 'pro6000', 'H100 PCIe')"
    )
    which.add_argument(
        "--detect", action="store_true", help="detect this machine's GPUs (NVML, nvidia-smi)"
    )
    add_version(p)
    add_format(p)


def run(args: argparse.Namespace) -> int:
    from servecheck.render import gpus as render

    if args.detect:
        from servecheck.hardware.detect import detect_gpus

        result = detect_gpus()
        render.detected(result, args)
        return render.exit_code(result)
    if args.gpu is not None:
        from servecheck.hardware.gpus import find_gpu
        from servecheck.host import installed_vllm_version
        from servecheck.versions import resolve_version

        render.one(
            find_gpu(args.gpu), resolve_version(args.vllm_version, installed_vllm_version()), args
        )
        return 0
    from servecheck.hardware.gpus import load_gpus

    render.table(load_gpus(), args)
    return 0
