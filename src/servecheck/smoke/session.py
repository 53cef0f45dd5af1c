"""A smoke run after the prediction: run the child, compare, explain a failure, keep a record.

run_smoke(report, install, model, ...) -> SmokeResult   (api.smoke calls it)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from servecheck.check_result import CheckResult
from servecheck.core import Target
from servecheck.findings.registry import Finding, Severity
from servecheck.smoke.compare import Comparison, error_text, observed_error
from servecheck.smoke.logparse import MARKER
from servecheck.smoke.result import RootCause, SmokeResult
from servecheck.smoke.runner import ChildRun, VllmInstall


def default_log_path(model: str) -> Path:
    """~/.cache/servecheck/smoke/<model folder>-<time>.log (never inside the model folder)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or "model")
    return base / "servecheck" / "smoke" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"


def vllm_model_arg(model: str, vllm_args: Sequence[str]) -> tuple[str, list[str]]:
    """MODEL as `vllm serve` takes it: the folder (not its config.json), or a Hub id with its
    `@revision` passed as --revision."""
    from servecheck.plan import serve_model_arg
    from servecheck.source.modelref import HF_SCHEME, hub_ref, looks_like_path

    args = list(vllm_args)
    if not model.startswith(HF_SCHEME) and looks_like_path(model):
        return serve_model_arg(model), args
    ref = hub_ref(model)
    if ref is None:
        return model, args
    if ref.revision and "--revision" not in args:
        args += ["--revision", ref.revision]
    return ref.repo_id, args


def kernel_env_of(install: VllmInstall, target: Target) -> list[str]:
    """--kernel-env items describing the vLLM install that runs (FlashInfer present or not,
    DeepGEMM importable or vendored), so the prediction is for that install."""
    if target.kind != "gpu" or not install.packages:
        return []
    items = [] if install.packages.get("flashinfer") else ["flashinfer=0"]
    items.append("deep_gemm=1" if install.packages.get("deep_gemm") else "deep_gemm=0")
    return items


def explain_failure(
    run: ChildRun, findings: Sequence[Finding], comparison: Comparison
) -> RootCause | None:
    """For a run that did not generate: explain's reading of the log, and the finding of the
    prediction that named this failure (the comparison's match, or a finding the matched
    signature lists), or None when nothing predicted it."""
    if run.outcome in ("generated", "interrupted"):
        return None
    from servecheck.explain import explain_text

    try:
        text = run.log_path.read_text(errors="replace")
    except OSError:
        return None
    # the child's own report lines are not vLLM's: keep them out of explain's reading
    vllm_lines = [x for x in text.splitlines() if not MARKER.match(x)]
    expl = explain_text("\n".join(vllm_lines))
    sig = expl.match.signature if expl.match else None
    error = observed_error(run)
    root = error_text(error, 400) if error else (expl.root.text if expl.root else None)
    predicted = comparison.matched_finding
    if predicted is None and sig is not None:
        errors = [f for f in findings if f.severity == Severity.ERROR]
        predicted = next((f for f in errors if f.code in sig.finding), None)
    return RootCause(
        root_line=root,
        title=sig.title if sig else None,
        cause=(expl.match.detail() or sig.cause) if expl.match and sig else None,
        fix=sig.fix if sig else None,
        predicted_by=predicted,
        signature=sig.id if sig else None,
    )


def run_smoke(
    report: CheckResult,
    install: VllmInstall,
    model: str,
    *,
    vllm_args: Sequence[str] = (),
    timeout_s: float | None = None,
    log_path: Path | None = None,
    record_dir: Path | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SmokeResult:
    """Run vLLM on `model` (the folder as `vllm serve` takes it), compare, explain, record."""
    from servecheck.smoke import runner
    from servecheck.smoke.compare import compare_run
    from servecheck.smoke.memory import memory_rows, plan_for, predicted_findings
    from servecheck.smoke.record import smoke_record, write_record

    cpu = report.target.kind == "cpu"
    timeout = timeout_s or runner.default_timeout(report.total_bytes, cpu=cpu)
    spec = runner.RunSpec(
        model=model,
        serve_args=tuple(vllm_args),
        timeout_s=timeout,
        log_path=log_path or default_log_path(model),
    )
    run = runner.run_child(spec, install, on_status)
    layout = plan_for(report, run)
    findings = predicted_findings(report, layout)
    comparison = compare_run(report, run, findings, memory_rows(report, run, layout))
    record_path = None
    if record_dir is not None and run.outcome in ("generated", "loaded", "failed"):
        rec = smoke_record(
            run.log_path.read_text(errors="replace"),
            model=model,
            serve_args=list(vllm_args),
            exit_code=run.exit_code,
            wall_s=run.wall_s,
            timed_out=False,
            config=dict(report.checkpoint.config),
            driver=runner.driver_probe(),
        )
        record_path = write_record(rec, record_dir)
    return SmokeResult(
        report=report,
        install=install,
        command=runner.serve_command(model, vllm_args),
        run=run,
        comparison=comparison,
        root_cause=explain_failure(run, findings, comparison),
        findings=findings,
        record_path=record_path,
        timeout_s=timeout,
    )
