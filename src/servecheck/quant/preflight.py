"""What vLLM checks about the quantization method and the model dtype before building a module.

Mirrors, per release:

- config/model.py ``_verify_quantization``: the override walk (quant/methods.py), the
  ``--quantization`` mismatch, unknown and deprecated methods;
- config/model.py ``_get_and_verify_dtype`` / ``_resolve_auto_dtype``: ``--dtype auto`` from the
  config's dtype and the platform's supported dtypes, float16-unsafe model types;
- config/vllm.py ``_get_quantization_config``: the method's minimum compute capability and
  supported activation dtypes;
- platforms/cuda.py ``check_if_supports_dtype``: bfloat16 below sm_80.
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.findings.registry import Finding
from servecheck.findings.rules import dtype as drules
from servecheck.findings.rules import quant_methods as qrules
from servecheck.quant.methods import (
    Platform,
    _covering,
    _table,
    detect_method,
    first_release_without,
    method_row,
    release_methods,
)
from servecheck.versions import VllmVersion

# vLLM 0.33 config/model.py _STR_DTYPE_TO_TORCH_DTYPE
DTYPE_NAMES = {
    "half": "float16",
    "float16": "float16",
    "float": "float32",
    "float32": "float32",
    "bfloat16": "bfloat16",
}


@dataclass(frozen=True)
class Preflight:
    """The method and dtype vLLM settles on, and what it raises on the way."""

    method: str | None
    dtype: str
    findings: tuple[Finding, ...] = ()
    config_dtype: str = "bfloat16"


def supported_dtypes(plat: Platform) -> list[str]:
    """vLLM 0.33 platforms/cuda.py supported_dtypes (CPU: x86/aarch64 all three)."""
    if plat.is_cpu:
        return ["bfloat16", "float16", "float32"]
    if plat.cap >= 80:
        return ["bfloat16", "float16", "float32"]
    if plat.cap >= 60:
        return ["float16", "float32"]
    return ["float32"]


def no_float16(version: VllmVersion | str) -> list[str]:
    row = _covering(_table().get("no_float16", []), version)
    return list(row["model_types"]) if row else []


def resolve_dtype(
    config_dtype: str | None,
    requested: str | None,
    model_type: str,
    plat: Platform,
    gpu: str,
    version: VllmVersion,
) -> tuple[str, list[Finding]]:
    """vLLM 0.33 config/model.py _get_and_verify_dtype (dtype auto: _resolve_auto_dtype)."""
    ver = version.effective
    findings: list[Finding] = []
    config = DTYPE_NAMES.get((config_dtype or "float32").lower(), "float32")
    unsafe = model_type in no_float16(version)
    want = (requested or "auto").lower()
    have = f"{plat.cap / 10:.1f}" if plat.capability is not None else "unknown"
    if want == "auto":
        supported = [d for d in supported_dtypes(plat) if not (unsafe and d == "float16")]
        preferred = supported[0]
        if config == "float32":
            config = preferred  # float32 checkpoints are downcast to the preferred dtype
        if config in supported:
            dtype = config
        else:
            dtype = preferred
            findings.append(
                drules.DtypeFallback.make(
                    gpu=gpu, have=have, config_dtype=config, dtype=dtype, ver=ver
                )
            )
    elif want in DTYPE_NAMES:
        dtype = DTYPE_NAMES[want]
    else:
        findings.append(drules.UnknownDtype.make(dtype=want, ver=ver))
        return config, findings
    if unsafe and dtype == "float16":
        findings.append(drules.Float16NotSupported.make(model_type=model_type, ver=ver))
    below_ampere = plat.kind == "cuda" and plat.capability is not None and plat.capability < 80
    if below_ampere and dtype == "bfloat16":
        findings.append(drules.Bfloat16NeedsAmpere.make(gpu=gpu, have=have, ver=ver))
    return dtype, findings


def preflight(
    raw: dict | None,
    checkpoint_method: str | None,
    *,
    config_dtype: str | None,
    model_type: str,
    plat: Platform,
    gpu: str,
    version: VllmVersion,
    user_quant: str | None = None,
    user_dtype: str | None = None,
) -> Preflight:
    """Run vLLM's method and dtype checks for one checkpoint on one target."""
    ver = version.effective
    findings: list[Finding] = []
    det = detect_method(raw, checkpoint_method or "", user_quant, model_type, plat, version)
    if det.mismatch:
        findings.append(
            qrules.QuantMethodMismatch.make(user=det.mismatch, method=checkpoint_method, ver=ver)
        )
    elif det.override and det.override != checkpoint_method:
        findings.append(
            qrules.CheckpointMethodOverridden.make(
                checkpoint=checkpoint_method, method=det.override, ver=ver
            )
        )
    method = det.method
    dtype, dfind = resolve_dtype(config_dtype, user_dtype, model_type, plat, gpu, version)
    findings += dfind
    if method is None or det.mismatch:
        return Preflight(method, dtype, tuple(findings), config_dtype or "float32")
    row = method_row(method, version)
    if row is None:
        gone = first_release_without(method)
        history = f" (vLLM removed it in {gone})" if gone else ""
        fix = (
            f"Use vLLM older than {gone}, or convert the checkpoint to a method {ver} supports."
            if gone
            else "Correct quant_method, or use a vLLM release that supports it."
        )
        findings.append(
            qrules.MethodNotInRelease.make(
                method=method,
                history=history,
                fix_text=fix,
                methods=release_methods(version),
                ver=ver,
            )
        )
        return Preflight(method, dtype, tuple(findings), config_dtype or "float32")
    if row.deprecated:
        findings.append(qrules.DeprecatedQuantMethod.make(method=method, ver=ver))
    need = row.min_capability
    cap = plat.capability if plat.kind == "cuda" else None
    if cap is not None and need is not None and cap < need:
        findings.append(
            qrules.MethodNeedsNewerGpu.make(method=method, need=need, have=cap, gpu=gpu, ver=ver)
        )
    act_dtypes = row.act_dtypes
    if method == "gguf" and act_dtypes is not None and cap is not None and cap >= 100:
        from servecheck.quant.gguf import release_row as gguf_row

        # vLLM 0.13-0.23 gguf.py get_supported_act_dtypes: no bfloat16 from capability 100
        g = gguf_row(version.release)
        if g is not None and not g["bf16_blackwell"]:
            act_dtypes = [d for d in act_dtypes if d != "bfloat16"]
    if act_dtypes is not None and dtype not in act_dtypes:
        findings.append(
            qrules.ActDtypeNotSupported.make(
                method=method,
                dtype=dtype,
                supported=", ".join(act_dtypes),
                first=act_dtypes[0],
                torch_list=", ".join(f"torch.{d}" for d in act_dtypes),
                ver=ver,
            )
        )
    return Preflight(method, dtype, tuple(findings), config_dtype or "float32")
