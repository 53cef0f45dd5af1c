"""servecheck gpus: the GPU table, one GPU in detail, or the GPUs of this machine."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from servecheck.commands.options import FormatOpt, OutputFormat, VllmVersionOpt, fail_usage

EPILOG = (
    "Examples:\n\n  servecheck gpus\n\n  servecheck gpus --gpu 'rtx pro 6000'\n\n"
    "  servecheck gpus --detect --format json"
)


def gpus(
    gpu: Annotated[
        str | None,
        typer.Option("--gpu", help="Show one GPU (forgiving match: 'pro6000', 'H100 PCIe')."),
    ] = None,
    detect: Annotated[
        bool, typer.Option("--detect", help="Detect this machine's GPUs (NVML, nvidia-smi).")
    ] = False,
    vllm_version: VllmVersionOpt = None,
    output: FormatOpt = OutputFormat.text,
) -> None:
    """List the GPUs servecheck knows, show one with the kernels vLLM runs on it, or detect."""
    from servecheck.errors import InputError

    if gpu is not None and detect:
        fail_usage("use either --gpu or --detect")
        return
    try:
        if detect:
            _detect(output)
        elif gpu is not None:
            _one(gpu, output, vllm_version)
        else:
            _table(output)
    except InputError as exc:
        fail_usage(str(exc))


def _gpu_dict(g: Any) -> dict[str, Any]:
    return {
        "name": g.name,
        "aliases": list(g.aliases),
        "nvml_names": list(g.nvml_names),
        "arch": g.arch,
        "compute_capability": g.cc,
        "sm": g.sm,
        "memory_gib": g.memory_gib,
        "memory_bytes": g.total_memory_bytes,
        "memory_bandwidth_gbs": g.memory_bandwidth_gbs,
        "fp8_tensor_cores": g.fp8_tensor_cores,
        "fp4_tensor_cores": g.fp4_tensor_cores,
        "max_shared_memory_per_block_optin": g.max_shared_memory_per_block_optin,
        "min_cuda": g.min_cuda,
        "max_cuda": g.max_cuda,
        "nvlink": g.nvlink,
        "form_factor": g.form_factor,
        "source": g.source,
        "note": g.note,
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _table(output: OutputFormat) -> None:
    from servecheck.hardware.gpus import load_gpus

    rows = load_gpus()
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps([_gpu_dict(g) for g in rows], indent=2) + "\n")
        return
    headers = ("GPU", "Arch", "sm", "Memory", "GB/s", "FP8", "FP4", "Smem/block", "CUDA")
    cells = [
        (
            g.name,
            g.arch,
            g.sm,
            f"{g.memory_gib:g} GB",
            f"{g.memory_bandwidth_gbs:g}",
            _yes(g.fp8_tensor_cores),
            _yes(g.fp4_tensor_cores),
            f"{g.max_shared_memory_per_block_optin // 1024} KiB",
            f">= {g.min_cuda}" + (f", <= {g.max_cuda}" if g.max_cuda else ""),
        )
        for g in rows
    ]
    if output is OutputFormat.markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.table import Table

    t = Table(title=f"{len(rows)} GPUs (servecheck gpus --gpu NAME for one)", title_justify="left")
    for h in headers:
        t.add_column(
            h,
            justify="right" if h in ("Memory", "GB/s") else "left",
            no_wrap=h != "GPU",
            min_width=18 if h == "GPU" else None,
        )
    for c in cells:
        t.add_row(*c)
    Console().print(t)


def _one(name: str, output: OutputFormat, vllm_version: str | None) -> None:
    from servecheck.hardware.gpus import find_gpu
    from servecheck.hardware.kernel_matrix import ROWS, cell, column_for
    from servecheck.versions import resolve_version

    g = find_gpu(name)  # UnknownGpuError (an InputError) lists the closest names
    version = resolve_version(vllm_version)
    column = column_for(g.capability)
    kernels = []
    for row in ROWS:
        for moe in (False, True):
            c = cell(row, moe, column, version.effective)
            kernels.append(
                {
                    "scheme": row.title,
                    "layer": "moe" if moe else "linear",
                    "kernel": c.choice.kernel if c.choice else None,
                    "text": c.text,
                    "error": c.choice.error if c.choice else None,
                }
            )
    if output is OutputFormat.json:
        data = _gpu_dict(g) | {"vllm_version": version.effective, "kernels": kernels}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from rich.table import Table

    console = Console()
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("GPU", g.name)
    if g.aliases:
        info.add_row("Also known as", ", ".join(g.aliases))
    info.add_row("Architecture", f"{g.arch}, compute capability {g.cc} ({g.sm})")
    info.add_row("Memory", f"{g.memory_gib:g} GB, {g.memory_bandwidth_gbs:g} GB/s")
    info.add_row("Tensor cores", f"FP8 {_yes(g.fp8_tensor_cores)}, FP4 {_yes(g.fp4_tensor_cores)}")
    info.add_row("Shared memory", f"{g.max_shared_memory_per_block_optin} bytes per block (opt-in)")
    info.add_row("CUDA", f">= {g.min_cuda}" + (f", <= {g.max_cuda}" if g.max_cuda else ""))
    info.add_row("Source", g.source)
    if g.note:
        info.add_row("Note", g.note)
    console.print(info)
    t = Table(
        title=f"What vLLM {version.effective} runs on {g.sm} (docs/kernel-table.md)",
        title_justify="left",
    )
    t.add_column("Scheme")
    t.add_column("Linear")
    t.add_column("MoE")
    for i in range(0, len(kernels), 2):
        t.add_row(kernels[i]["scheme"], kernels[i]["text"], kernels[i + 1]["text"])
    console.print(t)


def _detect(output: OutputFormat) -> None:
    from servecheck.hardware.detect import detect_gpus

    result = detect_gpus()
    gpus_out = [
        {
            "index": d.index,
            "name": d.name,
            "compute_capability": d.cc,
            "sm": f"sm_{d.capability}" if d.capability is not None else None,
            "memory_bytes": d.memory_total_bytes,
            "table_row": d.gpu.name if d.gpu else None,
            "torch_arch_ok": d.torch_arch_ok,
        }
        for d in result.gpus
    ]
    if output is OutputFormat.json:
        data = {
            "found": result.found,
            "method": result.method,
            "reason": result.reason,
            "driver_version": result.driver_version,
            "cuda_driver_version": result.cuda_driver_version,
            "torch_version": result.torch_version,
            "torch_cuda_version": result.torch_cuda_version,
            "torch_arch_list": list(result.torch_arch_list)
            if result.torch_arch_list is not None
            else None,
            "gpus": gpus_out,
            "notes": list(result.notes),
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    console = Console(highlight=False)
    if not result.found:
        reason = result.reason or "no NVIDIA GPU found"
        console.print(reason[0].upper() + reason[1:] + ".")
        return
    driver = f"driver {result.driver_version or '?'}"
    if result.cuda_driver_version:
        driver += f", supports CUDA up to {result.cuda_driver_version}"
    console.print(f"{len(result.gpus)} GPU(s) via {result.method}; {driver}")
    for d, out in zip(result.gpus, gpus_out, strict=True):
        mem = (
            f"{d.memory_total_bytes / 2**30:.1f} GiB"
            if d.memory_total_bytes is not None
            else "memory unknown"
        )
        torch_text = {
            True: "torch has kernels for it",
            False: "torch was NOT built for this architecture",
            None: "torch not checked",
        }[d.torch_arch_ok]
        row = f" ({d.gpu.name})" if d.gpu and d.gpu.name != d.name else ""
        console.print(f"  GPU {d.index}: {d.name}{row}, {out['sm'] or 'sm_?'}, {mem}, {torch_text}")
    if result.torch_version:
        console.print(
            f"torch {result.torch_version}"
            + (f" (CUDA {result.torch_cuda_version})" if result.torch_cuda_version else "")
            + (f", arch list {' '.join(result.torch_arch_list)}" if result.torch_arch_list else "")
        )
    for note in result.notes:
        console.print(f"note: {note}", style="dim")
