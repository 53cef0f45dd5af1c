"""Turn the --gpu / --gpus options into a Target (a table GPU, the local GPU, or vLLM's CPU)."""

from __future__ import annotations

from servecheck.core import NO_TARGET, Target
from servecheck.errors import InputError


def target_from_option(gpu: str | None, count: int = 1) -> Target:
    if gpu is None:
        return NO_TARGET
    key = gpu.strip().lower()
    if key == "cpu":
        return Target(name="cpu", kind="cpu", capability=None, count=count)
    if key == "auto":
        return _detected(count)
    from servecheck.hardware.gpus import find_gpu

    found = find_gpu(gpu)
    return Target(
        name=found.name,
        kind="gpu",
        capability=found.capability,
        memory_bytes=found.total_memory_bytes,
        count=count,
    )


def _detected(count: int) -> Target:
    from servecheck.hardware.detect import detect_gpus

    result = detect_gpus()
    if not result.found:
        raise InputError(f"--gpu auto: no GPU detected ({result.reason}); name one with --gpu")
    first = result.gpus[0]
    if first.capability is None:
        raise InputError(f"--gpu auto: could not read the compute capability of {first.name}")
    return Target(
        name=first.gpu.name if first.gpu else first.name,
        kind="gpu",
        capability=first.capability,
        memory_bytes=first.memory_total_bytes,
        count=count if count > 1 else len(result.gpus),
    )


def local_target(gpu: str | None) -> Target:
    """The target of a run on this machine: `auto` (or None) is the local GPU, else vLLM's CPU
    backend when no GPU is found; any other value as --gpu takes it."""
    if gpu is None or gpu.strip().lower() == "auto":
        try:
            return _detected(1)
        except InputError:
            return target_from_option("cpu")
    return target_from_option(gpu)
