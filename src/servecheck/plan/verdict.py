"""The plan's verdict findings: it fits (and how), fits only shorter, or does not fit."""

from __future__ import annotations

from typing import Any

from servecheck.findings.collect import unique
from servecheck.findings.registry import Finding, Severity
from servecheck.findings.rules import memory as mrules
from servecheck.findings.rules import parallel as prules
from servecheck.plan.memory import LayoutPlan, gib
from servecheck.plan.recommend import Command, closest


def verdict_findings(
    plans: list[LayoutPlan],
    best: LayoutPlan | None,
    rec_len: int | None,
    max_len: int,
    gpu: Any,
    total_gpus: int,
    command: Command | None,
    ver: str,
) -> list[Finding]:
    gpus = f"{total_gpus}x {gpu.name}"
    out: list[Finding] = []
    valid = [p for p in plans if p.valid]
    if not valid:
        errors = sorted(
            {p.code for plan in plans for p in plan.problems if p.severity == Severity.ERROR}
        )
        out.append(
            prules.NoValidLayout.make(
                gpus=total_gpus, detail=", ".join(errors) or "no layout", ver=ver
            )
        )
        for plan in plans:
            out += [p for p in plan.problems if p.severity == Severity.ERROR]
        return unique(out)
    if best is not None and best.fits:
        length = max_len
        out.append(_fits_finding(best, gpus, length, command, ver))
        out += list(best.findings)  # tight-fit warning, if any
        out += list(best.problems)
        return out
    near = closest(plans)
    if best is not None and rec_len:
        # Fits only with a shorter context: report why the full context fails, and the fix.
        out += list(best.findings)
        out += [p for p in best.problems if p.severity != Severity.ERROR]
        return out
    detail = "no valid layout" if near is None else f"closest: {near.layout.label}, {near.status}"
    out.append(
        mrules.NoLayoutFits.make(
            gpus=gpus,
            closest=detail,
            suggestion=_suggest_more(near, gpu, total_gpus),
            ver=ver,
        )
    )
    if near is not None:
        out += list(near.findings)
    return out


def _fits_finding(
    best: LayoutPlan, gpus: str, length: int, command: Command | None, ver: str
) -> Finding:
    return mrules.Fits.make(
        [best.layout.label],
        layout=best.layout.label,
        gpus=gpus,
        weights=gib(best.weights_per_gpu),
        kv=gib(best.available_kv),
        tokens=f"{best.kv_tokens:,}",
        concurrency=f"{best.concurrency:.2f}",
        max_len=f"{length:,}",
        command=command.serve if command else "",
        ver=ver,
    )


def _suggest_more(near: LayoutPlan | None, gpu: Any, total_gpus: int) -> str:
    if near is None:
        return "Change the GPU count or the checkpoint's format."
    weights_all = near.weights_per_gpu * near.layout.world
    per_gpu = near.total * 0.85
    n = total_gpus
    while weights_all / n > per_gpu and n < 256:
        n *= 2
    if n > total_gpus:
        return (
            f"The weights need about {n} GPUs of {gib(near.total)} ({gib(weights_all)} in "
            "all), or GPUs with more memory, or a smaller quantization."
        )
    return "Lower --max-model-len or --max-num-seqs, or use --kv-cache-dtype fp8."
