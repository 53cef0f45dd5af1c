"""servecheck plan: which tensor/pipeline/expert-parallel layouts fit, and the launch command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from servecheck.commands.options import (
    FormatOpt,
    KernelEnvOpt,
    ModelArg,
    OutputFormat,
    VerboseOpt,
    VllmVersionOpt,
    fail_usage,
)

EPILOG = (
    "Examples:\n\n  servecheck plan examples/glm-4.5-air-derestricted-fp8 --gpu 'RTX PRO 6000' "
    "--gpus 2\n\n  servecheck plan ./DeepSeek-V3 --gpu H100 --gpus 8 --nodes 2 "
    "--max-model-len 32768 --format markdown > plan.md"
)


def plan(
    model: ModelArg,
    gpu: Annotated[
        str, typer.Option("--gpu", help="GPU name (e.g. 'H100', 'RTX PRO 6000', 'L4').")
    ],
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs per node.")] = 1,
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Nodes (Ray cluster).")] = 1,
    max_model_len: Annotated[
        int | None,
        typer.Option("--max-model-len", min=1, help="Context length (default: the model's)."),
    ] = None,
    kv_cache_dtype: Annotated[
        str,
        typer.Option("--kv-cache-dtype", help="auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16."),
    ] = "auto",
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory-utilization",
            min=0.01,
            max=1.0,
            help="Share of GPU memory for vLLM (default: the release's).",
        ),
    ] = None,
    max_num_seqs: Annotated[
        int | None, typer.Option("--max-num-seqs", min=1, help="Default: vLLM's for the GPU.")
    ] = None,
    max_num_batched_tokens: Annotated[
        int | None,
        typer.Option("--max-num-batched-tokens", min=1, help="Default: vLLM's for the GPU."),
    ] = None,
    expert_parallel: Annotated[
        bool | None,
        typer.Option(
            "--enable-expert-parallel/--no-expert-parallel",
            help="Only layouts with (or without) expert parallelism (default: both).",
        ),
    ] = None,
    speculative: Annotated[
        bool, typer.Option("--mtp", help="Plan for MTP speculative decoding (loads MTP layers).")
    ] = False,
    enforce_eager: Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs.")] = False,
    vllm_version: VllmVersionOpt = None,
    kernel_env: KernelEnvOpt = None,
    output: FormatOpt = OutputFormat.text,
    verbose: VerboseOpt = False,
) -> None:
    """Plan memory and parallelism: every valid TP/PP/EP layout, whether it fits, KV capacity,
    longest context, concurrency, and a `vllm serve` command for the best one."""
    from servecheck.api import plan_model
    from servecheck.errors import InputError
    from servecheck.plan import ServeOptions
    from servecheck.plan.kv_cache import KV_DTYPE_BYTES

    if kv_cache_dtype != "auto" and kv_cache_dtype not in KV_DTYPE_BYTES:
        fail_usage(f"--kv-cache-dtype {kv_cache_dtype!r}: use auto, fp8, fp8_e4m3, fp8_e5m2")
        return
    options = ServeOptions(
        max_model_len=max_model_len,
        kv_cache_dtype=kv_cache_dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        enforce_eager=enforce_eager,
        speculative=speculative,
        enable_expert_parallel=expert_parallel,
    )
    try:
        result = plan_model(
            model,
            gpu=gpu,
            gpus=gpus,
            nodes=nodes,
            options=options,
            vllm_version=vllm_version,
            kernel_env=kernel_env or (),
        )
    except InputError as exc:
        fail_usage(str(exc))
        return
    if output is OutputFormat.json:
        import json

        from servecheck.plan.report import plan_to_dict

        sys.stdout.write(json.dumps(plan_to_dict(result), indent=2) + "\n")
    elif output is OutputFormat.markdown:
        from servecheck.plan.report import render_plan_markdown

        sys.stdout.write(f"# servecheck plan: {result.model}\n\n")
        sys.stdout.write(render_plan_markdown(result))
    else:
        from servecheck.plan.report import render_plan_text

        render_plan_text(result, Console(), verbose=verbose)
    raise typer.Exit(0 if result.fits else 1)
