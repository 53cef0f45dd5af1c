"""Agreement between stored dtypes and resolutions: which modules a config contradicts."""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.checks.expected import linear_specs
from servecheck.fix.facts import (
    FLOAT,
    MIXED,
    QUANTIZED,
    ROUTER_RECIPE_HINT,
    SPLIT_CODES,
    UNKNOWN,
    IgnoreContext,
    ModuleFacts,
    stored_weight,
)
from servecheck.model.inventory import (
    EXPERTS,
    ROUTER,
    Module,
)
from servecheck.quant.resolve import Resolution, ResolutionResult

# Agreement between stored dtypes and resolutions


@dataclass(frozen=True)
class Disagreement:
    """A module whose resolution contradicts how it is stored."""

    module: str
    kind: str
    stored: str
    resolved: str
    fixable: bool  # an ignore-list change can make them agree
    reason: str
    remedy: str = ""
    code: str | None = None  # the finding code that reports it


def _disagreement(
    f: ModuleFacts,
    resolved: str,
    fixable: bool,
    reason: str,
    remedy: str = "",
    code: str | None = None,
) -> Disagreement:
    """A Disagreement about the stored module `f`."""
    return Disagreement(f.name, f.module.kind, f.stored, resolved, fixable, reason, remedy, code)


def _resolved_text(res: Resolution) -> str:
    if res.error:
        return f"error {res.error}"
    return res.scheme or "unquantized"


def resolves_quantized(res: Resolution) -> bool:
    return res.scheme is not None or (res.error is not None and res.error not in SPLIT_CODES)


def disagreements(ctx: IgnoreContext, resolution: ResolutionResult) -> list[Disagreement]:
    """Every module whose resolution disagrees with its stored weights (headers needed)."""
    if ctx.config_only:
        return [
            Disagreement(
                module=r.module.name,
                kind=r.module.kind,
                stored="unknown",
                resolved=f"error {r.error}",
                fixable=True,
                reason="the ignore list splits it",
                code=r.error,
            )
            for r in resolution.resolutions
            if r.error in SPLIT_CODES
        ]
    tensors = ctx.report.checkpoint.tensors or {}
    out: list[Disagreement] = []
    for res in resolution.resolutions:
        f = ctx.facts.get(res.module.name)
        if f is None or not f.units:
            continue
        m = f.module
        if not f.consulted:
            if f.state in (QUANTIZED, MIXED):
                code = "K012" if m.kind == ROUTER else "K008"
                out.append(
                    _disagreement(
                        f,
                        "unquantized (built without the quantization config)",
                        False,
                        f"vLLM builds {m.name} without the quantization config, so its stored "
                        "quantized weights cannot load; no config edit changes that",
                        "re-quantize with it kept in 16-bit"
                        + (ROUTER_RECIPE_HINT if m.kind == ROUTER else ""),
                        code,
                    )
                )
            continue
        if f.state == UNKNOWN:
            continue
        resolved = _resolved_text(res)
        if res.error in SPLIT_CODES:
            ok_state = f.state in (FLOAT, QUANTIZED)
            out.append(
                _disagreement(
                    f,
                    resolved,
                    ok_state,
                    "the ignore list covers some of its shards or expert projections, not all",
                    "" if ok_state else _mixed_remedy(m),
                    res.error,
                )
            )
            continue
        if f.state == MIXED:
            out.append(
                _disagreement(
                    f,
                    resolved,
                    False,
                    _mixed_reason(f),
                    _mixed_remedy(m),
                    "K008",
                )
            )
            continue
        quantized = resolves_quantized(res)
        if f.state == FLOAT and quantized and not f.ignorable:
            ver = ctx.report.version.effective
            out.append(
                _disagreement(
                    f,
                    resolved,
                    False,
                    f"stored {f.stored} but quantized ({resolved}): vLLM {ver} applies the "
                    "'Linear' target's scheme to MoE experts without consulting the ignore list",
                    "use a vLLM release that honours ignore for experts (0.24 or later), or "
                    "re-quantize the experts",
                    "K008",
                )
            )
        elif f.state == FLOAT and quantized:
            out.append(
                _disagreement(
                    f,
                    resolved,
                    True,
                    f"stored {f.stored} but the config quantizes it ({resolved})",
                    code="K008",
                )
            )
        elif f.state == QUANTIZED and not quantized:
            if res.ignored:
                out.append(
                    _disagreement(
                        f,
                        resolved,
                        True,
                        f"stored {f.stored} but the ignore list makes vLLM build it 16-bit "
                        f"(ignored by {', '.join(res.ignored_by)})",
                        code="K008",
                    )
                )
            else:
                out.append(
                    _disagreement(
                        f,
                        resolved,
                        False,
                        f"stored {f.stored} but no config group targets it",
                        "add a config group whose targets match it and whose scheme describes "
                        "how it is stored",
                        "K008",
                    )
                )
        elif f.state == QUANTIZED and res.scheme is not None:
            bad = _format_mismatch(f, res, tensors)
            if bad:
                out.append(
                    _disagreement(
                        f,
                        resolved,
                        False,
                        bad,
                        "make config_groups describe the stored format, or re-quantize",
                        "K008",
                    )
                )
    return out


def _mixed_reason(f: ModuleFacts) -> str:
    tensors_dtypes = dict(zip(f.units, f.dtypes, strict=True))
    by_dtype: dict[str, list[str]] = {}
    for u, d in tensors_dtypes.items():
        if d:
            by_dtype.setdefault(d, []).append(u.rsplit(".", 1)[-1])
    parts = "; ".join(
        f"{', '.join(sorted(set(us))[:4])}{' …' if len(set(us)) > 4 else ''} {d}"
        for d, us in sorted(by_dtype.items())
    )
    what = "experts" if f.module.kind == EXPERTS else "shards"
    return (
        f"its {what} are stored differently ({parts}); vLLM builds {f.name} as one layer "
        "with one scheme"
    )


def _mixed_remedy(m: Module) -> str:
    return "re-quantize so every shard of the fused layer (every expert) is stored alike"


def _format_mismatch(f: ModuleFacts, res: Resolution, tensors) -> str | None:
    """Stored quantized and resolved quantized: does the stored weight match the scheme?"""
    m = f.module
    if m.kind == EXPERTS and m.experts is not None:
        out_f, in_f = m.experts.intermediate_size, m.experts.hidden_size
    elif m.shards:
        out_f, in_f = m.shards[0].out_features, m.in_features
    else:
        return None
    weights = [e for e in linear_specs(out_f, in_f, res, False) if e.role == "weight"]
    if not weights:
        return None  # a scheme servecheck does not lay out tensor by tensor
    want = weights[0]
    suffix = want.suffix
    for u in f.units:
        dtype, name = stored_weight(tensors, u)
        if dtype is None:
            continue
        if name != f"{u}.{suffix}" or (want.dtypes is not None and dtype not in want.dtypes):
            expected = "/".join(sorted(want.dtypes or ())) + f" {suffix}"
            return (
                f"stored as {name.rsplit('.', 1)[-1]} {dtype} but {res.scheme} expects {expected}"
            )
    return None
