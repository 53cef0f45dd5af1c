"""The library surface: check() and friends. The CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from servecheck.check_result import CheckResult
from servecheck.checks.audit import audit
from servecheck.checks.estimate import estimated_bytes
from servecheck.core import NO_TARGET, Target, check_target, gc_paused
from servecheck.findings.collect import unique
from servecheck.findings.registry import Finding
from servecheck.findings.rules import architecture as arch_rules
from servecheck.findings.rules import checkpoint as ckpt_rules
from servecheck.host import installed_vllm_version, read_cpu
from servecheck.model.arch import build_inventory
from servecheck.model.config import parse_config
from servecheck.model.family import identify
from servecheck.model.support import missing_sizes, support_findings
from servecheck.quant.methods import Platform
from servecheck.quant.preflight import preflight
from servecheck.quant.resolve import resolve
from servecheck.quant.spec import parse_quant
from servecheck.report import CheckReport
from servecheck.source.local import Checkpoint
from servecheck.source.resolve import open_model
from servecheck.versions import resolve_version

# The plan and the kernel stages are imported when a target asks for them: a check without
# --gpu never loads them (start-up time, issue 15).
if TYPE_CHECKING:
    from servecheck.compare import Comparison
    from servecheck.fix import FixOutcome, FixProposal
    from servecheck.hardware.gpus import Gpu
    from servecheck.plan import Plan, ServeOptions
    from servecheck.plan.alternatives import GpuRecheck
    from servecheck.plan.layouts import Layout
    from servecheck.smoke.result import SmokeResult

__all__ = [
    "NO_TARGET",
    "CheckReport",
    "Target",
    "check",
    "check_checkpoint",
    "compare",
    "fix",
    "open_model",
    "plan_model",
    "propose_fix",
    "smoke",
]


def check(
    model: str | Path | None,
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    kernel_env: Sequence[str] = (),
    quantization: str | None = None,
    dtype: str | None = None,
    propose_fix: bool = False,
    revision: str | None = None,
    offline: bool | None = None,
    launch: str | Sequence[str] | None = None,
) -> CheckReport:
    """Run every check on a model: a folder, a config.json, or a Hub id `org/name[@revision]`
    (the Hugging Face cache first, then the Hub's config and safetensors headers; `offline`,
    default HF_HUB_OFFLINE, reads only the caches).

    ``quantization`` and ``dtype`` are vLLM's ``--quantization`` and ``--dtype`` (None: not
    passed, i.e. the checkpoint's method and ``auto``). With `propose_fix`, the report also
    carries a verified ignore-list fix (report.fix) or the reason there is none
    (report.fix_unavailable).

    `launch` is a `vllm serve` launch to predict: a pasted command (`vllm serve MODEL ...`,
    `python -m vllm.entrypoints.openai.api_server ...`, `docker run ... vllm/vllm-openai ...`,
    `LLM(...)`) or the arguments alone, as a string or a list. MODEL may then be empty (the
    command names it); the report's plan is that launch's."""
    stages = {
        "vllm_version": vllm_version,
        "target": target,
        "kernel_env": kernel_env,
        "quantization": quantization,
        "dtype": dtype,
    }
    with gc_paused():
        if launch is not None:
            report = check_launch(model, launch, revision=revision, offline=offline, **stages)
        else:
            ckpt = open_model(model, revision=revision, offline=offline)
            report = check_checkpoint(ckpt, **stages)
        return with_fix(report) if propose_fix else report


def check_launch(
    model: str | Path | None,
    launch: str | Sequence[str],
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    kernel_env: Sequence[str] = (),
    quantization: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    offline: bool | None = None,
) -> CheckReport:
    """Check one `vllm serve` launch: its arguments read as the release reads them, the model
    with its --hf-overrides, and the plan of exactly its layout and settings."""
    from servecheck.errors import InputError
    from servecheck.launch import read_launch
    from servecheck.launch.predict import launch_target, plan_launch, prepare
    from servecheck.launch.settings import settings_from
    from servecheck.plan import serve_model_arg

    version = resolve_version(vllm_version, installed_vllm_version())
    parsed = read_launch(launch, version.requested, model=str(model) if model else None)
    if not parsed.model:
        raise InputError("no model to check: name it before `--` or in the vllm serve command")
    settings = settings_from(parsed, version.effective)
    ckpt = prepare(open_model(parsed.model, revision=revision, offline=offline), settings)
    target, extra = launch_target(target, settings, version.effective)
    report = check_checkpoint(
        ckpt,
        vllm_version=vllm_version,
        target=target,
        kernel_env=kernel_env,
        plan=False,
        quantization=quantization or settings.quantization,
        dtype=dtype or settings.dtype,
    )
    report = dataclasses.replace(report, findings=(*extra, *report.findings))
    model_arg = ckpt.location if ckpt.source and ckpt.source.repo_id else None
    recheck = gpu_rechecker(
        ckpt,
        vllm_version=vllm_version,
        kernel_env=kernel_env,
        options=settings.options,
        nodes=settings.nodes,
        model_arg=model_arg or serve_model_arg(ckpt.location),
        env=settings.env,
        quantization=quantization or settings.quantization,
        dtype=dtype or settings.dtype,
    )
    plan, found = plan_launch(report, settings, parsed, model_arg=model_arg, recheck=recheck)
    merged = sorted((*report.findings, *found), key=lambda f: (f.severity.rank, f.code))
    return dataclasses.replace(report, plan=plan, findings=tuple(unique(merged)), launch=parsed)


def check_checkpoint(
    ckpt: Checkpoint,
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    kernel_env: Sequence[str] = (),
    plan: bool = True,
    quantization: str | None = None,
    dtype: str | None = None,
) -> CheckReport:
    """Run every check on an opened checkpoint (e.g. one whose config was edited in memory).

    With a GPU target and `plan`, the report carries the plan for target.count GPUs."""
    target = check_target(target)
    version = resolve_version(vllm_version, installed_vllm_version())
    if target.kind == "cpu" and target.cpu is None:
        target = dataclasses.replace(target, cpu=read_cpu())
    cfg = parse_config(ckpt.config)
    ver = version.effective
    served, support = support_findings(
        cfg.architectures, ckpt.config, version.requested, version.requested
    )
    served_as = served.span.cls if served.span else None
    inventory = build_inventory(cfg, ckpt.tensors, served_as, ver)
    quant = parse_quant(ckpt.config, ckpt.hf_quant_config, version)
    plat = Platform.of(target)
    pre = preflight(
        quant.raw or None,
        quant.method,
        config_dtype=cfg.dtype,
        model_type=cfg.model_type,
        plat=plat,
        gpu=target.name,
        version=version,
        user_quant=quantization,
        user_dtype=dtype,
    )
    resolution = resolve(
        inventory,
        quant,
        version,
        target.capability,
        method=pre.method,
        plat=plat,
        tensors=ckpt.tensors,
        tp=max(target.count, 1),
        gguf=ckpt.gguf,
    )
    findings: list[Finding] = [
        *version.findings(),
        *support,
        *quant.problems,
        *pre.findings,
        *resolution.findings,
    ]
    result = None
    if ckpt.gguf is not None:
        from servecheck.quant.gguf import gguf_findings
        from servecheck.quant.gguf import module_bytes as gguf_bytes

        # sizes from the GGUF tensor infos; a removed loader is said once (F008, not Q012)
        findings = gguf_findings(findings)
        module_bytes = {
            **estimated_bytes(inventory, resolution, cfg),
            **gguf_bytes(inventory, ckpt.gguf),
        }
    elif ckpt.config_only:
        findings.append(ckpt_rules.ConfigOnly.make(ver=ver))
        module_bytes = estimated_bytes(inventory, resolution, cfg)
    else:
        result = audit(ckpt, cfg, inventory, resolution, version)
        findings += result.findings
        module_bytes = dict(result.module_bytes)
    findings += missing_sizes(cfg, inventory)
    if inventory.derived_from_tensors:
        findings.append(ckpt_rules.ArchitectureNotModelled.make(arch=cfg.architecture, ver=ver))
    elif inventory.derivation == "config":
        findings.append(
            arch_rules.ArchitectureApproximate.make(
                arch=cfg.architecture,
                detail="" if served_as is None else f" (vLLM serves it with {served_as})",
                served=served_as or "not in the registry",
                ver=ver,
            )
        )
    kernels = None
    if target.kind in ("gpu", "cpu") or kernel_env:
        from servecheck.hardware.env import resolve_env
        from servecheck.hardware.plan_kernels import select_kernels

        kernels = select_kernels(
            inventory,
            resolution,
            target,
            version.release,
            resolve_env(version.release, kernel_env),  # also checks --kernel-env's values
            model=cfg,
            quant=quant,
            dtype=pre.dtype,
        )
    if kernels is not None:
        findings += kernels.findings
    notes = tuple(n for n in (version.note(), *inventory.notes, ckpt.weights_note()) if n)
    findings.sort(key=lambda f: (f.severity.rank, f.code))
    report = CheckReport(
        location=ckpt.location,
        checkpoint=ckpt,
        version=version,
        target=target,
        model=cfg,
        family=identify(ckpt.config),
        inventory=inventory,
        quant=quant,
        resolution=resolution,
        audit=result,
        findings=tuple(findings),
        module_bytes=module_bytes,
        notes=notes,
        kernels=kernels,
    )
    return with_plan(report) if plan else report


def with_plan(report: CheckReport) -> CheckReport:
    """The report with the plan for its target (a GPU and a count) and the plan's findings."""
    target = report.target
    if target.kind != "gpu":
        return report
    from servecheck.errors import InputError
    from servecheck.hardware.gpus import find_gpu
    from servecheck.plan import ServeOptions, make_plan, serve_model_arg
    from servecheck.plan.alternatives import alternatives

    try:
        row = find_gpu(target.name)
    except InputError:
        return report
    total = None
    if target.memory_bytes and target.memory_bytes != row.total_memory_bytes:
        # a detected GPU: its driver-reported total, less the CUDA reserve
        from servecheck.plan.config import GIB, table

        total = target.memory_bytes - round(table()["cuda_total"]["reserve_gib"] * GIB)
    plan = make_plan(
        report,
        row,
        max(target.count, 1),
        1,
        ServeOptions(),
        model_arg=serve_model_arg(report.location),
        cuda_total=total,
    )
    if not plan.fits:
        recheck = gpu_rechecker(
            report.checkpoint,
            vllm_version=report.version.requested,
            kernel_env=(),
            options=ServeOptions(),
            nodes=1,
            model_arg=serve_model_arg(report.location),
            env={},
        )
        alts = alternatives(
            report, row, plan, model_arg=serve_model_arg(report.location), recheck_gpu=recheck
        )
        plan = dataclasses.replace(plan, alternatives=tuple(alts))
    findings = sorted((*report.findings, *plan.findings), key=lambda f: (f.severity.rank, f.code))
    return dataclasses.replace(report, plan=plan, findings=tuple(findings))


def plan_model(
    model: str | Path | None,
    *,
    gpu: str,
    gpus: int = 1,
    nodes: int = 1,
    options: ServeOptions | None = None,
    vllm_version: str | None = None,
    kernel_env: Sequence[str] = (),
    revision: str | None = None,
    offline: bool | None = None,
    only: list[Layout] | None = None,
    launch: str | Sequence[str] | None = None,
) -> Plan:
    """Check a checkpoint and plan it on `gpus` x `nodes` GPUs named `gpu` (planned once).

    `only` restricts the layouts considered. `launch` (`vllm serve` arguments or a pasted
    command, as for check) constrains the plan: the layout sizes it sets (-tp, -pp, -dp, -ep)
    and the serving options it sets replace `options`'."""
    from servecheck.errors import InputError
    from servecheck.hardware.gpus import find_gpu
    from servecheck.plan import ServeOptions, make_plan, serve_model_arg
    from servecheck.plan.alternatives import alternatives

    options = options or ServeOptions()
    parsed = settings = None
    if launch is not None:
        from servecheck.launch import read_launch
        from servecheck.launch.predict import merge_options
        from servecheck.launch.settings import settings_from

        version = resolve_version(vllm_version, installed_vllm_version())
        parsed = read_launch(launch, version.requested, model=str(model) if model else None)
        if not parsed.model:
            raise InputError("no model to plan: name it before `--` or in the vllm serve command")
        model = parsed.model
        settings = settings_from(parsed, version.effective)
        options = merge_options(options, settings, parsed)
    if model is None:
        raise InputError("no model: name a folder, a config.json or a Hub id")
    row = find_gpu(gpu)
    if type(gpus) is not int or type(nodes) is not int or gpus < 1 or nodes < 1:
        raise InputError(f"{gpus!r} GPUs on {nodes!r} nodes: both must be whole numbers >= 1")
    target = Target(
        name=row.name,
        kind="gpu",
        capability=row.capability,
        memory_bytes=row.total_memory_bytes,
        count=gpus * nodes,
    )
    ckpt = open_model(model, revision=revision, offline=offline)
    if settings is not None:
        from servecheck.launch.predict import prepare

        ckpt = prepare(ckpt, settings)
    report = check_checkpoint(
        ckpt,
        vllm_version=vllm_version,
        target=target,
        kernel_env=kernel_env,
        plan=False,
        quantization=settings.quantization if settings else None,
        dtype=settings.dtype if settings else None,
    )
    model_arg = ckpt.location if ckpt.source and ckpt.source.repo_id else serve_model_arg(model)
    env = settings.env if settings else {}
    if settings is not None:
        from servecheck.launch.predict import constrain

        only = only or constrain(settings, parsed, gpus, nodes, report.model.is_moe)
    plan = make_plan(report, row, gpus, nodes, options, model_arg=model_arg, only=only, env=env)
    if not plan.fits:
        recheck = gpu_rechecker(
            ckpt,
            vllm_version=vllm_version,
            kernel_env=kernel_env,
            options=options,
            nodes=nodes,
            model_arg=model_arg,
            env=env,
            quantization=settings.quantization if settings else None,
            dtype=settings.dtype if settings else None,
        )
        alts = alternatives(report, row, plan, model_arg=model_arg, env=env, recheck_gpu=recheck)
        plan = dataclasses.replace(plan, alternatives=tuple(alts))
    if settings is not None:
        plan = dataclasses.replace(plan, findings=(*settings.findings, *plan.findings))
    return plan


def gpu_rechecker(
    ckpt: Checkpoint,
    *,
    vllm_version: str | None,
    kernel_env: Sequence[str],
    options: ServeOptions,
    nodes: int,
    model_arg: str,
    env: dict[str, str],
    quantization: str | None = None,
    dtype: str | None = None,
) -> GpuRecheck:
    """The whole check and plan of this checkpoint on another table GPU (for alternatives):
    None when the check itself fails there (a kernel or dtype the GPU lacks)."""

    def recheck(row: Gpu, count: int) -> Plan | None:
        target = Target(
            name=row.name,
            kind="gpu",
            capability=row.capability,
            memory_bytes=row.total_memory_bytes,
            count=count,
        )
        report = check_checkpoint(
            ckpt,
            vllm_version=vllm_version,
            target=target,
            kernel_env=kernel_env,
            plan=False,
            quantization=quantization,
            dtype=dtype,
        )
        if report.verdict == "fail":
            return None
        from servecheck.plan import make_plan

        per_node = max(count // nodes, 1)
        return make_plan(report, row, per_node, nodes, options, model_arg=model_arg, env=env)

    return recheck


# ---------------------------------------------------------------------------------------------
# fix and compare: the stages take reports; the checks are run here


def recheck(report: CheckResult, config: dict) -> CheckReport:
    """What `check` reports for the same checkpoint with another config.json, computed in
    memory (nothing is written)."""
    ckpt = dataclasses.replace(report.checkpoint, config=config)
    return check_checkpoint(ckpt, vllm_version=report.version.requested, target=report.target)


def propose_fix(report: CheckReport, strategy: str = "checkpoint") -> FixProposal:
    """A new ignore list for the report's checkpoint, judged entry by entry and re-checked."""
    from servecheck import fix as fix_stage

    return fix_stage.propose(report, strategy, recheck=recheck)


def with_fix(report: CheckReport) -> CheckReport:
    """The report with a verified checkpoint-strategy fix attached, or why there is none."""
    from servecheck.fix import FixError

    if report.quant.method is None or report.checkpoint.config_only:
        return report
    try:
        return dataclasses.replace(report, fix=propose_fix(report))
    except FixError as exc:
        return dataclasses.replace(report, fix_unavailable=str(exc))


def fix(
    model: str | Path,
    strategy: str = "checkpoint",
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    write: bool = False,
    out: str | Path | None = None,
    force: bool = False,
) -> FixOutcome:
    """Check `model`, propose a fix, re-check the result, and write it when asked.

    The re-check runs in memory on the checkpoint with the new config, so the user's folder is
    only written with `write` (atomically, keeping config.json.orig); `out` names a new overlay
    folder, which is checked again once written."""
    from servecheck import fix as fix_stage

    if write and out is not None:
        raise fix_stage.FixError("use --write or --out, not both")
    report = check(model, vllm_version=vllm_version, target=target)
    source = report.checkpoint.source
    # A Hub model's config is read from servecheck's cache, an HF-cache model's from its
    # snapshot; neither is ever written in place.
    remote = source is not None and source.kind != "local"
    config = source.config_file if remote and source.config_file else model
    outcome = fix_stage.prepare(propose_fix(report, strategy), config)
    if not write and out is None:
        return outcome
    on_hub = remote and (write or source.kind == "hub")
    outcome = fix_stage.write(
        outcome,
        in_place=write,
        out=Path(out) if out is not None else None,
        force=force,
        hub=(source.repo_id or "", source.commit or "") if on_hub else None,
    )
    if out is not None and outcome.written is not None and not on_hub:
        after = check(Path(out), vllm_version=vllm_version, target=target)
        outcome = dataclasses.replace(outcome, after=after)
    return outcome


def compare(
    a: str | Path,
    b: str | Path,
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
) -> Comparison:
    """Run `check` on both checkpoints (folders or config.json files) and compare them."""
    from servecheck.compare import compare_reports

    ra = check(a, vllm_version=vllm_version, target=target)
    rb = check(b, vllm_version=vllm_version, target=target)
    return compare_reports(ra, rb)


def smoke(
    model: str | Path,
    *,
    target: Target,
    vllm_args: Sequence[str] = (),
    python: str | None = None,
    timeout_s: float | None = None,
    log_path: Path | None = None,
    record_dir: Path | None = None,
    kernel_env: Sequence[str] = (),
    on_prediction: Callable[[CheckReport], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SmokeResult:
    """Predict (as `check`, for the vLLM release that will run), then load the model with that
    vLLM in a child process, generate a few tokens, and compare what it did with the prediction.
    MODEL is a folder, a config.json's folder, or a Hub id `org/name[@revision]` (vLLM then
    downloads it as `vllm serve` would).

    Raises smoke.runner.VllmNotFound (an InputError) when no Python with vLLM is found."""
    from servecheck.smoke import session
    from servecheck.smoke.runner import find_vllm

    install = find_vllm(python)
    ckpt = open_model(model)
    env = list(kernel_env) or session.kernel_env_of(install, target)
    report = check_checkpoint(ckpt, vllm_version=install.version, target=target, kernel_env=env)
    if on_prediction is not None:
        on_prediction(report)
    served, args = session.vllm_model_arg(str(model), vllm_args)
    return session.run_smoke(
        report,
        install,
        served,
        vllm_args=args,
        timeout_s=timeout_s,
        log_path=log_path,
        record_dir=record_dir,
        on_status=on_status,
    )
