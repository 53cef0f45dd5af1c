"""AMD Quark checkpoints (``quant_method: quark``), per module.

Mirrors vLLM 0.33 model_executor/layers/quantization/quark/quark.py: ``exclude`` (quark/utils.py
should_ignore_layer), the config of a layer (``layer_quant_config`` patterns, else
``global_quant_config``; ``layer_type_quant_config`` is keyed by class objects in vLLM and
never matches a JSON key; the shards of a fused layer must agree), the scheme
(``_get_scheme_cls_from_config``: FP8 W8A8 per tensor/channel/block, INT8 W8A8, W4A16 INT4,
W4A8 MXFP4-FP8, OCP MX MXFP4/MXFP6/MXFP8, NVFP4) and its minimum capability, and the experts'
Quark MoE method (quark_moe.py get_moe_method_target). Which schemes a release has, and their
minimum capabilities, are knowledge/quark.toml (scripts/extract_quark.py); the matching rules
are those of 0.33, a scheme being found only where its class exists in the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from typing import Any

from servecheck.findings.rules import formats as rules
from servecheck.knowledge import load_toml
from servecheck.model.inventory import EXPERTS, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.matching import FusedShardMismatch, PatternSet, should_ignore
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.versions import Release, VllmVersion

_STRATEGY = {"per_tensor": "tensor", "per_channel": "channel", "per_block": "block"}
_STRATEGY["per_group"] = "group"
MXFP4 = QuantArgs(num_bits=4, type="float", strategy="group", group_size=32)
MXFP8 = QuantArgs(num_bits=8, type="float", strategy="group", group_size=32)
NVFP4 = QuantArgs(num_bits=4, type="float", strategy="tensor_group", group_size=16)
NVFP4_ACT = QuantArgs(
    num_bits=4, type="float", strategy="tensor_group", group_size=16, dynamic="local"
)


# Quark MoE methods and the compressed-tensors / native method whose oracle they call
# (vLLM 0.33 quark/quark_moe.py: select_fp8/int8/wna16/nvfp4/mxfp8_moe_backend, and
# select_mxfp4_moe_backend as GptOssMxfp4MoEMethod does)
QUARK_MOE_ORACLE = {
    "QuarkW8A8Fp8MoEMethod": "CompressedTensorsW8A8Fp8MoEMethod",
    "QuarkW8A8Int8MoEMethod": "CompressedTensorsW8A8Int8MoEMethod",
    "QuarkW4A16Int4MoEMethod": "CompressedTensorsWNA16MoEMethod",
    "QuarkNvfp4MoEMethod": "CompressedTensorsW4A4Nvfp4MoEMethod",
    "QuarkW8A8Mxfp8MoEMethod": "CompressedTensorsW8A8Mxfp8MoEMethod",
    "QuarkOCP_MX_MoEMethod": "GptOssMxfp4MoEMethod",
}


@cache
def release_row(release: Release) -> dict[str, Any] | None:
    for row in load_toml("quark.toml")["release"]:
        if Release.parse(row["since"]) <= release <= Release.parse(row["until"]):
            return row
    return None


class QuarkError(Exception):
    """What vLLM raises while choosing a layer's scheme."""

    def __init__(self, exc: str, text: str):
        super().__init__(text)
        self.exc, self.text = exc, text


@dataclass(frozen=True)
class Scheme:
    cls: str  # vLLM's Quark scheme (or MoE method) class
    kernel_scheme: str | None  # the compressed-tensors scheme whose kernels it uses
    weights: QuantArgs | None = None
    inputs: QuantArgs | None = None


def _args(q: dict | None, *, activation: bool = False) -> QuantArgs | None:
    if not isinstance(q, dict):
        return None
    dtype = str(q.get("dtype", ""))
    bits = 4 if "4" in dtype.split("_")[0] else 8
    strategy = _STRATEGY.get(str(q.get("qscheme")), "tensor")
    if activation and strategy == "channel":
        strategy = "token"  # Quark's per-channel activations are per token
    block = tuple(q.get("block_size") or ()) or None
    return QuantArgs(
        num_bits=bits,
        type="float" if dtype.startswith("fp") else "int",
        symmetric=q.get("symmetric") is not False,
        group_size=q.get("group_size"),
        strategy=strategy,
        block_structure=block if strategy == "block" else None,  # type: ignore[arg-type]
        dynamic=bool(q.get("is_dynamic")),
    )


def _one(q: Any) -> Any:
    if isinstance(q, list):
        return q[0] if len(q) == 1 else None
    return q


def _is_fp8_w8a8(w: dict | None, i: dict | None) -> bool:
    if not isinstance(w, dict) or not isinstance(i, dict):
        return False
    if w.get("dtype") != "fp8_e4m3" or i.get("dtype") != "fp8_e4m3" or w.get("is_dynamic"):
        return False
    if w.get("qscheme") == "per_block":
        return (
            list(w.get("block_size") or []) == [128, 128]
            and w.get("symmetric") is True
            and bool(i.get("is_dynamic"))
            and i.get("qscheme") == "per_group"
            and i.get("group_size") == 128
            and i.get("symmetric") is True
        )
    if w.get("qscheme") not in ("per_tensor", "per_channel"):
        return False
    return bool(i.get("is_dynamic")) or i.get("qscheme") == "per_tensor"


def _is_w8a8_int8(w: dict | None, i: dict | None, row: dict) -> bool:
    if not isinstance(w, dict) or not isinstance(i, dict):
        return False
    static = i.get("qscheme") == "per_tensor" and not i.get("is_dynamic")
    dynamic = i.get("qscheme") == "per_channel" and i.get("is_dynamic") is True
    dynamic_ok = bool({"_is_w8a8_int8", "_is_dynamic_per_token_w8a8"} & set(row["checks"]))
    return (
        w.get("dtype") == "int8"
        and i.get("dtype") == "int8"
        and w.get("qscheme") in ("per_tensor", "per_channel")
        and w.get("symmetric") is True
        and ((static and not w.get("is_dynamic")) or (dynamic and dynamic_ok))
    )


def _ocp_mx_dtype(w: dict | None) -> str | None:
    """quantization/utils/ocp_mx_utils.py ocp_mx_weight_dtype_and_rows (the dtype part)."""
    if not isinstance(w, dict) or not isinstance(w.get("dtype"), str):
        return None
    mx = w["dtype"].replace("fp", "mxfp")
    if mx not in ("mxfp4", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp8_e4m3"):
        return None
    per_group = w.get("qscheme") == "per_group" and w.get("group_size") == 32
    per_block = w.get("qscheme") == "per_block" and list(w.get("block_size") or [0, 0])[1] == 32
    return mx if per_group or per_block else None


def linear_scheme(cfg: dict, row: dict, pack_method: str) -> Scheme:
    """QuarkConfig._get_scheme_cls_from_config for one layer's config."""
    if cfg.get("output_tensors") or cfg.get("bias"):
        raise QuarkError(
            "NotImplementedError",
            "Currently, Quark models with output_tensors and bias quantized are not supported",
        )
    w, i = cfg.get("weight"), cfg.get("input_tensors")
    have = row["schemes"]
    if (isinstance(w, list) and len(w) > 1) or (isinstance(i, list) and len(i) > 1):
        if _is_nvfp4(w, i) and "QuarkNVFP4" in have:
            return Scheme("QuarkNVFP4", "W4A4Fp4", NVFP4, NVFP4_ACT)
        raise QuarkError(
            "NotImplementedError",
            "Multi-entry weight or activation quantization configs are only supported for NVFP4.",
        )
    w, i = _one(w), _one(i)
    if isinstance(w, dict) and w.get("qscheme") == "per_block" and not w.get("block_size"):
        raise QuarkError(
            "ValueError",
            "Quark W8A8 FP8 per-block weight quantization requires `block_size` in the weight "
            "quantization config.",
        )
    if _is_fp8_w8a8(w, i):
        cls = "QuarkW8A8Fp8PerBlock" if w and w.get("qscheme") == "per_block" else "QuarkW8A8Fp8"
        if cls in have:
            return Scheme(cls, "W8A8Fp8", _args(w), _args(i, activation=True))
    elif _is_w8a8_int8(w, i, row):
        return Scheme("QuarkW8A8Int8", "W8A8Int8", _args(w), _args(i, activation=True))
    elif (
        isinstance(w, dict)
        and i is None
        and w.get("dtype") in ("int4", "uint4")
        and pack_method in ("order", "reorder")
        and "QuarkW4A16Int4" in have
    ):
        return Scheme("QuarkW4A16Int4", "WNA16", _args(w))
    elif _is_w4a8_mxfp4_fp8(w, i) and "QuarkW4A8_MXFP4_FP8" in have:
        return Scheme("QuarkW4A8_MXFP4_FP8", "QUARK_W4A8_MXFP4_FP8", MXFP4, _args(i))
    mx = _ocp_mx_dtype(w)
    if mx is not None:
        if "QuarkOCP_MX" in have and (mx != "mxfp8_e4m3" or "QuarkW4A16Int4" in have):
            kernel = {"mxfp4": "W4A4Mxfp4", "mxfp8_e4m3": "W8A8Mxfp8"}.get(mx)
            return Scheme("QuarkOCP_MX", kernel, MXFP8 if "8" in mx else MXFP4)
        if "QuarkW4A4MXFP4" in have and mx == "mxfp4" and isinstance(i, dict):
            return Scheme("QuarkW4A4MXFP4", "W4A4Mxfp4", MXFP4)
    raise QuarkError(
        "NotImplementedError",
        f"No quark compatible scheme was found. Weight config: {w}, Input config: {i}",
    )


def _is_nvfp4(w: Any, i: Any) -> bool:
    if not (isinstance(w, list) and isinstance(i, list) and len(w) == len(i) == 2):
        return False
    fp4 = all(x.get("dtype") == "fp4" and x.get("group_size") == 16 for x in (w[0], i[0]))
    fp8 = all(
        x.get("dtype") == "fp8_e4m3" and x.get("qscheme") == "per_tensor" for x in (w[1], i[1])
    )
    return fp4 and fp8 and bool(i[0].get("is_dynamic")) and not w[0].get("is_dynamic")


def _is_w4a8_mxfp4_fp8(w: dict | None, i: dict | None) -> bool:
    return (
        isinstance(w, dict)
        and isinstance(i, dict)
        and w.get("dtype") == "fp4"
        and w.get("qscheme") == "per_group"
        and w.get("group_size") == 32
        and w.get("scale_format") == "e8m0"
        and not w.get("is_dynamic")
        and i.get("dtype") == "fp8_e4m3"
        and i.get("qscheme") == "per_tensor"
        and not i.get("is_dynamic")
        and i.get("symmetric") is True
    )


def moe_scheme(cfg: dict, row: dict, pack_method: str) -> Scheme:
    """quark_moe.py get_moe_method_target: the experts' Quark MoE method."""
    have = row["moe_methods"]
    w, i = cfg.get("weight"), cfg.get("input_tensors")
    if isinstance(w, list) and len(w) == 2 and "QuarkW4A8Fp8MoEMethod" in have:
        w0, w1 = w
        if w0.get("dtype") == "fp8_e4m3" and w1.get("dtype") == "int4":
            return Scheme("QuarkW4A8Fp8MoEMethod", None)
    if _is_nvfp4(w, i) and "QuarkNvfp4MoEMethod" in have:
        return Scheme("QuarkNvfp4MoEMethod", "W4A4Fp4", NVFP4, NVFP4_ACT)
    w, i = _one(w), _one(i)
    if _is_fp8_w8a8(w, i) and "QuarkW8A8Fp8MoEMethod" in have:
        return Scheme("QuarkW8A8Fp8MoEMethod", "W8A8Fp8", _args(w), _args(i, activation=True))
    if _is_w8a8_int8(w, i, row) and "QuarkW8A8Int8MoEMethod" in have:
        return Scheme("QuarkW8A8Int8MoEMethod", "W8A8Int8", _args(w), _args(i, activation=True))
    mx = _ocp_mx_dtype(w)
    if mx == "mxfp8_e4m3" and "QuarkW8A8Mxfp8MoEMethod" in have:
        return Scheme("QuarkW8A8Mxfp8MoEMethod", "W8A8Mxfp8", MXFP8)
    if mx is not None:
        name = next((m for m in have if "MX" in m.upper() and "FP8" not in m.upper()), None)
        if name is not None:
            return Scheme(name, "W4A4Mxfp4" if mx == "mxfp4" else None, MXFP4)
    int4 = isinstance(w, dict) and i is None and w.get("dtype") in ("int4", "uint4")
    if int4 and "QuarkW4A16Int4MoEMethod" in have:
        return Scheme("QuarkW4A16Int4MoEMethod", "WNA16", _args(w))
    raise QuarkError("RuntimeError", "Unsupported FusedMoe scheme")


class QuarkResolver(Base):
    """Quark's scheme per linear module and its MoE method per experts module."""

    def __init__(self, inventory: Inventory, raw: dict, version: VllmVersion, cap: int | None):
        super().__init__(inventory, version, cap)
        self.raw = raw
        self.row = release_row(version.release)
        self.exclude = PatternSet([str(p) for p in raw.get("exclude") or ()])
        export = raw.get("export")
        self.pack_method = str((export or {}).get("pack_method") or "")
        self.broken = None
        if not isinstance(export, dict):
            self.broken = (
                "The export key should be included in the configurations of Quark quantized model"
            )
            self._error("ValueError", self.broken, "quantization_config")

    def _error(self, exc: str, text: str, subject: str) -> None:
        self.collector.add(
            rules.QuarkRejects, subject, key=(exc, text), vllm_text=text, exception=exc,
            module=subject, ver=self.ver,
        )  # fmt: skip

    def _config(self, m: Module) -> dict:
        """QuarkConfig._find_matched_config: layer_quant_config, else the global config."""
        layer_cfg = self.raw.get("layer_quant_config") or {}
        fallback = self.raw.get("global_quant_config") or {}
        names = [s.ckpt_name for s in m.shards] if len(m.shards) > 1 else [m.name]
        found = []
        for name in names:
            hit = next(
                (c for p, c in layer_cfg.items() if (fnmatch(name, p) if "*" in p else name in p)),
                None,
            )
            found.append(hit if hit is not None else fallback)
        if any(f != found[0] for f in found):
            shards = [n.rsplit(".", 1)[-1] for n in names]
            raise QuarkError(
                "ValueError",
                f"Found a different quantization configuration for {shards} in {m.name}. vLLM "
                "requires all to use the same scheme.",
            )
        return found[0]

    def resolve(self, m: Module) -> Resolution:
        if self.row is None or self.broken or not m.receives_quant_config:
            return unquantized(m)
        if not (m.is_linear or m.kind == EXPERTS):
            return unquantized(m)
        try:
            ignored, _ = should_ignore(m.name, self.exclude, self.packed, "fused_first")
            children = m.kind == EXPERTS and any(
                p == m.name or p.startswith(m.name + ".") for p in self.exclude.patterns
            )
            if ignored or children:
                return Resolution(
                    module=unquantized(m).module,
                    method=unquantized(m).method,
                    ignored=True,
                    ignored_by=tuple(self.exclude.matches(m.name)) or (m.name,),
                )
            cfg = self._config(m)
            if m.kind == EXPERTS:
                s = moe_scheme(cfg, self.row, self.pack_method)
            else:
                s = linear_scheme(cfg, self.row, self.pack_method)
        except (QuarkError, FusedShardMismatch) as exc:
            exc_type = exc.exc if isinstance(exc, QuarkError) else "ValueError"
            self._error(exc_type, exc.text, m.name)
            return Resolution(module=m, method="error", error=rules.QuarkRejects.code)
        if m.kind == EXPERTS:
            return Resolution(
                module=m, method=s.cls, moe_method=s.cls, scheme=s.cls,
                kernel_scheme=s.kernel_scheme, weights=s.weights, inputs=s.inputs,
            )  # fmt: skip
        kernel = s.kernel_scheme
        if kernel in ("W4A4Mxfp4", "W8A8Mxfp8") and kernel not in self.version.feature(
            "quark_ocp_mx_kernels"
        ):
            kernel = None  # the OCP MX scheme chose its kernels itself then: not modelled
        need = self.row["schemes"][s.cls]
        error = self.capability_error(m, s.cls, need)
        return Resolution(
            module=m, method="QuarkLinearMethod", scheme=s.cls, kernel_scheme=kernel,
            weights=s.weights, inputs=s.inputs, min_capability=need, error=error,
        )  # fmt: skip
