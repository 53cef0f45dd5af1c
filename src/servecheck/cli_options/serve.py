"""The serving options `plan` takes (vLLM engine arguments it plans for) and their parsing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from servecheck.cli_options.values import fraction, positive_int

if TYPE_CHECKING:
    from servecheck.plan import ServeOptions


def add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-model-len",
        type=positive_int,
        metavar="L",
        help="context length (default: the model's)",
    )
    p.add_argument(
        "--kv-cache-dtype",
        default="auto",
        metavar="DTYPE",
        help="auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16 (default: auto)",
    )
    p.add_argument(
        "--gpu-memory-utilization",
        type=fraction,
        metavar="F",
        help="share of GPU memory for vLLM, 0.01 to 1 (default: the release's)",
    )
    p.add_argument(
        "--max-num-seqs", type=positive_int, metavar="N", help="default: vLLM's for the GPU"
    )
    p.add_argument(
        "--max-num-batched-tokens",
        type=positive_int,
        metavar="N",
        help="default: vLLM's for the GPU",
    )
    ep = p.add_mutually_exclusive_group()
    ep.add_argument(
        "--enable-expert-parallel",
        dest="expert_parallel",
        action="store_const",
        const=True,
        help="only layouts with expert parallelism (default: with and without)",
    )
    ep.add_argument(
        "--no-expert-parallel",
        dest="expert_parallel",
        action="store_const",
        const=False,
        help="only layouts without expert parallelism",
    )
    p.add_argument(
        "--mtp",
        action="store_true",
        help="plan for MTP speculative decoding (loads the MTP layers)",
    )
    p.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")


def serve_options(args: argparse.Namespace) -> ServeOptions:
    from servecheck.errors import InputError
    from servecheck.plan import ServeOptions
    from servecheck.plan.kv_cache import KV_DTYPE_BYTES

    if args.kv_cache_dtype != "auto" and args.kv_cache_dtype not in KV_DTYPE_BYTES:
        raise InputError(
            f"--kv-cache-dtype {args.kv_cache_dtype!r}: use auto, fp8, fp8_e4m3, fp8_e5m2"
        )
    return ServeOptions(
        max_model_len=args.max_model_len,
        kv_cache_dtype=args.kv_cache_dtype,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        enforce_eager=args.enforce_eager,
        speculative=args.mtp,
        enable_expert_parallel=args.expert_parallel,
    )
