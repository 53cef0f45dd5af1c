"""vLLM's quantization-method registry per release, and the method a checkpoint resolves to.

The registry (knowledge/quant_methods.toml) is extracted from every release's sources by
scripts/extract_quant_methods.py: which methods exist, each one's config class, minimum compute
capability, supported activation dtypes, whether it can override the checkpoint's method, and
whether it is deprecated. ``detect_method`` mirrors config/model.py ``_verify_quantization``:
the non-override methods, then the overrides in the release's order, each asked
``override_quantization_method``; the config classes' override rules live in ``_OVERRIDES``
(keyed by config class, so a release inherits the rule of the class it registers).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servecheck.core import Target
from servecheck.knowledge import load_toml
from servecheck.versions import Release, VllmVersion


@functools.cache
def _table() -> dict[str, Any]:
    return load_toml("quant_methods.toml")


def _key(version: VllmVersion | str) -> Release:
    return Release.parse(version) if isinstance(version, str) else version.release


def _covering(rows: list[dict[str, Any]], version: VllmVersion | str) -> dict[str, Any] | None:
    """The row whose since..until holds the release; a release newer than every row inherits
    the newest row that reaches the newest known release."""
    key = _key(version)
    newest = Release.parse(_table()["releases"][-1])
    for row in rows:
        until = Release.parse(row["until"])
        if Release.parse(row["since"]) <= key <= until or (key > newest and until == newest):
            return row
    return None


@dataclass(frozen=True)
class MethodRow:
    """One method of one release (vLLM's QUANTIZATION_METHODS entry and its config class)."""

    name: str
    config_class: str
    file: str
    min_capability: int | None
    act_dtypes: tuple[str, ...] | None
    override: bool
    deprecated: bool
    since: str

    @property
    def source(self) -> str:
        return self.file or f"model_executor/layers/quantization/{self.name}.py"


def method_row(name: str, version: VllmVersion | str) -> MethodRow | None:
    """The registry row of ``name`` in the release, or None when the release lacks it."""
    row = _covering(_table()["method"].get(name, []), version)
    if row is None:
        return None
    cap = row.get("min_capability")
    dtypes = row.get("act_dtypes")
    return MethodRow(
        name=name,
        config_class=row.get("class", ""),
        file=row.get("file", ""),
        min_capability=cap if isinstance(cap, int) else None,
        act_dtypes=tuple(dtypes) if dtypes is not None else None,
        override=bool(row.get("override")),
        deprecated=bool(row.get("deprecated")),
        since=row["since"],
    )


def release_methods(version: VllmVersion | str) -> list[str]:
    """Every method name the release registers (vLLM's QUANTIZATION_METHODS)."""
    return [n for n in _table()["method"] if method_row(n, version) is not None]


def override_order(version: VllmVersion | str) -> list[str]:
    row = _covering(_table()["overrides"], version)
    return list(row["order"]) if row else []


def first_release_without(name: str) -> str | None:
    """The first known release after the last one that registers ``name`` (None: still there)."""
    rows = _table()["method"].get(name, [])
    if not rows:
        return None
    last = max(Release.parse(r["until"]) for r in rows)
    later = [v for v in _table()["releases"] if Release.parse(v) > last]
    return later[0] if later else None


# ------------------------------------------------------------------ override rules ----------

# vLLM 0.33 utils/marlin_utils.py MARLIN_SUPPORTED_GROUP_SIZES
MARLIN_GROUP_SIZES = (-1, 32, 64, 128)


@dataclass(frozen=True)
class Platform:
    """What the override rules look at: CUDA with a capability, or vLLM's CPU platform."""

    kind: str  # "cuda", "cpu" or "none" (no target named: judged as a CUDA GPU of sm_90)
    capability: int | None

    @classmethod
    def of(cls, target: Target) -> Platform:
        """The platform vLLM's checks see for a target: a CUDA GPU, its CPU backend, or none
        named."""
        return cls({"gpu": "cuda", "cpu": "cpu"}.get(target.kind, "none"), target.capability)

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def is_cuda(self) -> bool:
        return self.kind != "cpu"

    @property
    def cap(self) -> int:
        # Without a target servecheck assumes a current data-centre GPU (sm_90).
        if self.kind == "none" or self.capability is None:
            return -1 if self.kind == "cpu" else 90
        return self.capability


def marlin_types(has_zp: bool, cap: int, cpu: bool = False) -> tuple[str, ...]:
    """vLLM 0.33 utils/marlin_utils.py query_marlin_supported_quant_types (integer types)."""
    if cpu:
        return ("uint4",) if has_zp else ("uint4b8",)
    if cap < 75:
        return ()
    return ("uint4",) if has_zp else ("uint4b8", "uint8b128")


def gptq_type(bits: Any, sym: Any) -> str | None:
    # vLLM 0.33 auto_gptq.py AutoGPTQConfig.TYPE_MAP
    return {(4, True): "uint4b8", (8, True): "uint8b128"}.get((bits, sym))


def _gptq_marlin_compatible(cfg: dict[str, Any], plat: Platform) -> bool:
    """vLLM 0.11 gptq_marlin.py GPTQMarlinConfig.is_gptq_marlin_compatible."""
    if not plat.is_cuda or str(cfg.get("quant_method", "")).lower() != "gptq":
        return False
    bits, group, sym, desc = (cfg.get(k) for k in ("bits", "group_size", "sym", "desc_act"))
    if bits is None or group is None or sym is None or desc is None:
        return False
    qtype = gptq_type(bits, sym)
    return (
        qtype is not None and qtype in marlin_types(False, plat.cap) and group in MARLIN_GROUP_SIZES
    )


def _awq_marlin_compatible(cfg: dict[str, Any], plat: Platform) -> bool:
    """vLLM 0.11 awq_marlin.py AWQMarlinConfig.is_awq_marlin_compatible."""
    if not plat.is_cuda or str(cfg.get("quant_method", "")).lower() != "awq":
        return False
    bits = cfg.get("bits", cfg.get("w_bit"))
    group = cfg.get("group_size", cfg.get("q_group_size"))
    zp = cfg.get("zero_point")
    if bits is None or group is None or zp is None:
        return False
    return bits == 4 and "uint4" in marlin_types(True, plat.cap) and group in MARLIN_GROUP_SIZES


def _method(cfg: dict[str, Any]) -> str:
    return str(cfg.get("quant_method", "")).lower()


def _modelopt_algo(cfg: dict[str, Any]) -> str | None:
    """vLLM 0.33 modelopt.py ModelOptQuantConfigBase._extract_modelopt_quant_algo."""
    if not _method(cfg).startswith("modelopt"):
        return None
    inner = cfg.get("quantization")
    if inner is not None:
        return str(inner.get("quant_algo", "")).upper() if isinstance(inner, dict) else None
    return str(cfg.get("quant_algo", "")).upper()


Override = Callable[[dict[str, Any], "str | None", "str | None", Platform], "str | None"]


def _auto(method: str, name: str, users: tuple[str, ...], cpu_off: bool = False) -> Override:
    """AutoGPTQConfig / AutoAWQConfig.override_quantization_method (vLLM 0.22+ / 0.24+)."""

    def rule(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
        if cpu_off and plat.is_cpu:
            return None  # vLLM 0.24+ auto_awq.py: on CPU, cpu_awq handles it
        if _method(cfg) != method:
            return None
        return name if user is None or user in users else None

    return rule


def _marlin_rule(kind: str) -> Override:
    """GPTQMarlinConfig / AWQMarlinConfig.override_quantization_method (vLLM <= 0.21/0.23)."""

    def rule(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
        ok = (_gptq_marlin_compatible if kind == "gptq" else _awq_marlin_compatible)(cfg, plat)
        if ok and user in (None, "marlin", f"{kind}_marlin"):
            return f"{kind}_marlin"
        return None

    return rule


def _modelopt_rule(algos: tuple[str, ...], name: str) -> Override:
    def rule(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
        algo = _modelopt_algo(cfg)
        return name if algo is not None and algo in algos else None

    return rule


def _moe_wna16(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
    """vLLM 0.33 moe_wna16.py: only when asked for with --quantization moe_wna16."""
    if user != "moe_wna16":
        return None
    bits = cfg.get("bits", cfg.get("w_bit"))
    method = _method(cfg)
    if method == "gptq" and bits in (4, 8):
        return "moe_wna16"
    if method == "awq" and bits == 4 and plat.cap >= 75:
        return "moe_wna16"
    return None


def _gpt_oss(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
    """vLLM 0.33 mxfp4.py GptOssMxfp4Config.override_quantization_method."""
    if cfg.get("quant_method") in ("mxfp4", "gpt_oss_mxfp4") and model_type == "gpt_oss":
        return "gpt_oss_mxfp4"
    return None


def _cpu_awq(cfg: dict, user: str | None, model_type: str | None, plat: Platform) -> str | None:
    """vLLM 0.12-0.22 cpu_wna16.py CPUAWQConfig: AWQ checkpoints on the CPU platform."""
    if plat.is_cpu and _method(cfg) == "awq" and user in (None, "awq", "cpu_awq"):
        return "cpu_awq"
    return None


# Config class -> its override rule. Classes not listed never override.
_OVERRIDES: dict[str, Override] = {
    "AutoGPTQConfig": _auto("gptq", "auto_gptq", ("gptq", "gptq_marlin", "auto_gptq", "marlin")),
    "AutoAWQConfig": _auto(
        "awq", "auto_awq", ("awq", "awq_marlin", "auto_awq", "marlin"), cpu_off=True
    ),
    "GPTQMarlinConfig": _marlin_rule("gptq"),
    "AWQMarlinConfig": _marlin_rule("awq"),
    "MoeWNA16Config": _moe_wna16,
    "ModelOptFp8Config": _modelopt_rule(("FP8",), "modelopt"),
    "ModelOptNvFp4Config": _modelopt_rule(("NVFP4", "W4A16_NVFP4"), "modelopt_fp4"),
    "ModelOptMxFp8Config": _modelopt_rule(("MXFP8",), "modelopt_mxfp8"),
    "ModelOptMixedPrecisionConfig": _modelopt_rule(("MIXED_PRECISION",), "modelopt_mixed"),
    "GptOssMxfp4Config": _gpt_oss,
    "CPUAWQConfig": _cpu_awq,
}


@dataclass(frozen=True)
class Detection:
    """The method vLLM settles on for a checkpoint, and how."""

    method: str | None  # the final --quantization value (None: unquantized)
    checkpoint_method: str  # quant_method as the checkpoint states it (normalised)
    override: str | None = None  # the override that claimed the checkpoint
    mismatch: str | None = None  # the user's --quantization when it contradicts the config


def detect_method(
    raw: dict[str, Any] | None,
    checkpoint_method: str,
    user: str | None,
    model_type: str | None,
    plat: Platform,
    version: VllmVersion | str,
) -> Detection:
    """vLLM config/model.py _verify_quantization up to the mismatch check."""
    if raw is None:
        return Detection(method=user, checkpoint_method="")
    if not raw.get("quant_method") and checkpoint_method:
        # model_arch_config_convertor normalises ModelOpt's producer/quant_algo form first
        raw = {**raw, "quant_method": checkpoint_method}
    overrides = override_order(version)
    if user == "humming":
        overrides = ["humming", *overrides]
    ordered = [m for m in release_methods(version) if m not in overrides] + overrides
    claimed = None
    for name in ordered:
        row = method_row(name, version)
        if row is None or not row.override:
            continue
        rule = _OVERRIDES.get(row.config_class)
        hit = rule(raw, user, model_type, plat) if rule else None
        if hit is not None:
            claimed = hit
            break
    if claimed is not None:
        return Detection(method=claimed, checkpoint_method=claimed, override=claimed)
    method = checkpoint_method or None
    if user is None or user == method:
        return Detection(method=method, checkpoint_method=checkpoint_method)
    return Detection(method=user, checkpoint_method=checkpoint_method, mismatch=user)
