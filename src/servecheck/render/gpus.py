"""`servecheck gpus` output: the GPU table, one GPU with its kernels, or this machine's GPUs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write, write_json

if TYPE_CHECKING:
    from servecheck.hardware.detect import DetectedGpu, DetectionResult
    from servecheck.hardware.gpus import Gpu
    from servecheck.versions import VllmVersion

HEADERS = ("GPU", "Arch", "sm", "Memory", "GB/s", "FP8", "FP4", "Smem/block", "CUDA")


def gpu_dict(g: Gpu) -> dict[str, Any]:
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


def _cuda(g: Gpu) -> str:
    return f">= {g.min_cuda}" + (f", <= {g.max_cuda}" if g.max_cuda else "")


def table(rows: list[Gpu], args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json([gpu_dict(g) for g in rows])
        return
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
            _cuda(g),
        )
        for g in rows
    ]
    if args.format == "markdown":
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        write("\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]))
        return
    if getattr(args, "quiet", False):
        return
    from servecheck.render.tables import TextTable

    headers = [h + ">" if h in ("Memory", "GB/s") else h for h in HEADERS]
    from servecheck.summary import counted

    title = f"{counted(len(rows), 'GPU')} (servecheck gpus --gpu NAME for one)"
    t = TextTable(*headers, title=title)
    for c in cells:
        t.add_row(*c)
    make_console().print(t)


def one(g: Gpu, version: VllmVersion, args: argparse.Namespace) -> None:
    from servecheck.hardware.kernel_matrix import ROWS, cell, column_for

    column = column_for(g.capability)
    kernels = []
    for row in ROWS:
        for moe in (False, True):
            c = cell(row, moe, column, version.release)
            kernels.append(
                {
                    "scheme": row.title,
                    "layer": "moe" if moe else "linear",
                    "kernel": c.choice.kernel if c.choice else None,
                    "text": c.text,
                    "error": c.choice.error if c.choice else None,
                }
            )
    if args.format == "json":
        write_json(gpu_dict(g) | {"vllm_version": version.effective, "kernels": kernels})
        return
    if args.format == "markdown":
        out = [
            f"# {g.name}",
            "",
            f"{g.arch}, compute capability {g.cc} ({g.sm}), {g.memory_gib:g} GB, CUDA {_cuda(g)}",
            "",
            f"| Scheme | Linear (vLLM {version.effective}) | MoE |",
            "|---|---|---|",
        ]
        out += [
            f"| {kernels[i]['scheme']} | {kernels[i]['text']} | {kernels[i + 1]['text']} |"
            for i in range(0, len(kernels), 2)
        ]
        write("\n".join(out))
        return
    if getattr(args, "quiet", False):
        return
    from servecheck.render.tables import TextTable, grid

    console = make_console()
    info = grid()
    info.add_row("GPU", g.name)
    if g.aliases:
        info.add_row("Also known as", ", ".join(g.aliases))
    info.add_row("Architecture", f"{g.arch}, compute capability {g.cc} ({g.sm})")
    info.add_row("Memory", f"{g.memory_gib:g} GB, {g.memory_bandwidth_gbs:g} GB/s")
    info.add_row("Tensor cores", f"FP8 {_yes(g.fp8_tensor_cores)}, FP4 {_yes(g.fp4_tensor_cores)}")
    info.add_row("Shared memory", f"{g.max_shared_memory_per_block_optin} bytes per block (opt-in)")
    info.add_row("CUDA", _cuda(g))
    info.add_row("Source", g.source)
    if g.note:
        info.add_row("Note", g.note)
    console.print(info)
    t = TextTable(
        "Scheme",
        "Linear",
        "MoE",
        title=f"What vLLM {version.effective} runs on {g.sm} (docs/kernel-table.md)",
    )
    for i in range(0, len(kernels), 2):
        t.add_row(kernels[i]["scheme"], kernels[i]["text"], kernels[i + 1]["text"])
    console.print(t)


def _detected_gpu(d: DetectedGpu) -> dict[str, Any]:
    return {
        "index": d.index,
        "name": d.name,
        "compute_capability": d.cc,
        "sm": f"sm_{d.capability}" if d.capability is not None else None,
        "memory_bytes": d.memory_total_bytes,
        "table_row": d.gpu.name if d.gpu else None,
        "torch_arch_ok": d.torch_arch_ok,
    }


def detected(result: DetectionResult, args: argparse.Namespace) -> None:
    gpus_out = [_detected_gpu(d) for d in result.gpus]
    if args.format == "json":
        write_json(
            {
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
        )
        return
    if getattr(args, "quiet", False):
        return
    lines = _detected_lines(result, gpus_out)
    write("\n".join(lines))


def exit_code(result: Any) -> int:
    """--detect that finds no GPU is 1 (nothing found where something was asked for)."""
    return exit_codes.found(result.found)


def _detected_lines(result: Any, gpus_out: list[dict[str, Any]]) -> list[str]:
    if not result.found:
        reason = result.reason or "no NVIDIA GPU found"
        return [reason[0].upper() + reason[1:] + "."]
    driver = f"driver {result.driver_version or '?'}"
    if result.cuda_driver_version:
        driver += f", supports CUDA up to {result.cuda_driver_version}"
    n = len(result.gpus)
    lines = [f"{n} GPU{'s' if n != 1 else ''} via {result.method}; {driver}"]
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
        lines.append(f"  GPU {d.index}: {d.name}{row}, {out['sm'] or 'sm_?'}, {mem}, {torch_text}")
    if result.torch_version:
        lines.append(
            f"torch {result.torch_version}"
            + (f" (CUDA {result.torch_cuda_version})" if result.torch_cuda_version else "")
            + (f", arch list {' '.join(result.torch_arch_list)}" if result.torch_arch_list else "")
        )
    lines += [f"note: {note}" for note in result.notes]
    return lines
