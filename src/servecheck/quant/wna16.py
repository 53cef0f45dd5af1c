"""GPTQ and AWQ checkpoints (quant_method gptq / awq) resolved per module as vLLM does.

Which linear and MoE method each module gets depends on the config class the release
registers for the method vLLM settled on (quant/methods.py), so one resolver covers all releases:

- ``AutoGPTQConfig`` (0.22+) / ``AutoAWQConfig`` (0.24+): Marlin-family methods that pick their
  kernel with choose_mp_linear_kernel, MoE through select_wna16_moe_backend;
- ``GPTQMarlinConfig`` / ``AWQMarlinConfig`` (older ``gptq_marlin`` / ``awq_marlin``): the same
  kernels, MoE on the Marlin MoE method;
- ``GPTQConfig`` / ``AWQConfig`` (older ``gptq`` / ``awq``): the ExLlama ``gptq_gemm`` and the AWQ
  ``awq_gemm`` kernels; MoE through ``MoeWNA16Config``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from servecheck.findings.rules import wna16 as rules
from servecheck.model.inventory import EXPERTS, LM_HEAD, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.methods import MARLIN_GROUP_SIZES, Platform, gptq_type, marlin_types
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.source.safetensors import TensorInfo
from servecheck.versions import VllmVersion

SRC = "model_executor/layers/quantization/"
# vLLM 0.33 auto_gptq.py maybe_update_config: unquant_dtypes (float16, bfloat16, float32)
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32"})


@dataclass(frozen=True)
class Wna16Config:
    """The fields vLLM's GPTQ / AWQ config classes read (from_config)."""

    kind: str  # "gptq" or "awq"
    bits: int
    group_size: int
    sym: bool  # GPTQ sym; AWQ: not zero_point
    desc_act: bool
    lm_head: bool
    dynamic: dict[str, Any]
    modules_to_not_convert: tuple[str, ...]
    modules_in_block: tuple[str, ...]

    @classmethod
    def parse(cls, kind: str, raw: dict[str, Any]) -> Wna16Config:
        bits = raw.get("bits", raw.get("w_bit", 4))
        group = raw.get("group_size", raw.get("q_group_size", -1))
        # AWQ: symmetric when it has no zero point
        sym = not raw.get("zero_point", True) if kind == "awq" else bool(raw.get("sym", True))
        block = raw.get("modules_in_block_to_quantize") or []
        flat: list[str] = []
        for item in block:
            flat.extend(item if isinstance(item, list) else [item])
        return cls(
            kind=kind,
            bits=int(bits) if isinstance(bits, int) else 4,
            group_size=int(group) if isinstance(group, int) else -1,
            sym=sym,
            desc_act=bool(raw.get("desc_act", False)),
            lm_head=bool(raw.get("lm_head", False)),
            dynamic=dict(raw.get("dynamic") or {}),
            modules_to_not_convert=tuple(raw.get("modules_to_not_convert") or ()),
            modules_in_block=tuple(str(x) for x in flat),
        )

    def with_headers(
        self, tensors: Mapping[str, TensorInfo] | None, version: VllmVersion
    ) -> Wna16Config:
        """vLLM's maybe_update_config: the quantized layers read from the safetensors headers
        when the config does not list them (GPTQ modules_in_block_to_quantize, AWQ
        modules_to_not_convert). ``tensors``: the headers (None: a config alone)."""
        if tensors is None or self.kind not in version.feature("wna16_layers_from_headers"):
            return self
        layers = {name.rsplit(".", 1)[0] for name in tensors}
        quantized = {
            name.rsplit(".", 1)[0] for name, t in tensors.items() if t.dtype not in FLOAT_DTYPES
        }
        if self.kind == "gptq" and not self.modules_in_block:
            return replace(self, modules_in_block=tuple(sorted(quantized)))
        if self.kind == "awq" and not self.modules_to_not_convert:
            return replace(self, modules_to_not_convert=tuple(sorted(layers - quantized)))
        return self

    @property
    def weight_type(self) -> str:
        if self.kind == "awq":
            return "uint4" if not self.sym else "uint4b8"
        return gptq_type(self.bits, self.sym) or f"uint{self.bits}"

    def args(self, bits: int | None = None, group: int | None = None) -> QuantArgs:
        g = self.group_size if group is None else group
        return QuantArgs(
            num_bits=bits or self.bits,
            type="int",
            symmetric=self.sym,
            group_size=g if g > 0 else None,
            strategy="group" if g > 0 else "channel",
            actorder="group" if self.desc_act else None,
        )


def marlin_check(wtype: str, group: int, zp: bool, plat: Platform) -> str | None:
    """vLLM 0.33 utils/marlin_utils.py _check_marlin_supported: None or vLLM's reason."""
    types = marlin_types(zp, plat.cap, plat.is_cpu)
    if wtype not in types:
        shown = "[" + ", ".join(types) + "]"
        return (
            f"Marlin does not support weight_bits = {wtype}. Only types = {shown} are supported "
            f"(for group_size = {group}, device_capability = {plat.cap}, zp = {zp})."
        )
    if group not in MARLIN_GROUP_SIZES:
        return (
            f"Marlin does not support group_size = {group}. Only group_sizes = "
            f"{list(MARLIN_GROUP_SIZES)} are supported."
        )
    return None


def moe_marlin_ok(m: Module, group: int, tp: int, padding: bool) -> bool:
    """vLLM 0.33 marlin_utils.py check_moe_marlin_supports_config (0.24: no tile padding)."""
    ex = m.experts
    assert ex is not None
    inter = ex.intermediate_size // max(tp, 1)
    if padding:
        shape = ex.hidden_size % 128 == 0 and (group <= 0 or inter % group == 0)
    else:
        shape = ex.hidden_size % 128 == 0 and inter % max(64, group) == 0
    return shape and group in MARLIN_GROUP_SIZES


class Wna16Resolver(Base):
    """GPTQ / AWQ methods per module, for the config class the release registers."""

    def __init__(
        self,
        inventory: Inventory,
        cfg: Wna16Config,
        method: str,
        config_class: str,
        version: VllmVersion,
        plat: Platform,
        tp: int = 1,
    ):
        super().__init__(inventory, version, plat.capability)
        self.cfg, self.method, self.cls, self.plat, self.tp = cfg, method, config_class, plat, tp
        self.scheme = "AWQ" if cfg.kind == "awq" else "GPTQ"
        self._config_errors()

    # ------------------------------------------------------------------ config-time errors --

    def _config_errors(self) -> None:
        cfg, ver = self.cfg, self.ver
        if cfg.kind == "gptq" and self.cls == "AutoGPTQConfig":
            # vLLM 0.30+ utils/gptq_utils.py normalize_and_validate_gptq_desc_act
            if (
                cfg.desc_act
                and cfg.group_size != -1
                and self.version.feature("gptq_desc_act") == "error"
            ):
                self.collector.add(rules.GptqDescActRemoved, "quantization_config", ver=ver)
            if gptq_type(cfg.bits, cfg.sym) is None:
                self.collector.add(
                    rules.Wna16ConfigRejected,
                    "quantization_config",
                    config_class=self.cls,
                    vllm_text=f"Unsupported quantization config: bits={cfg.bits}, sym={cfg.sym}",
                    ver=ver,
                )
        if cfg.kind == "awq" and cfg.bits != 4:
            text = (
                f"Unsupported num_bits = {cfg.bits}. Supported: 4. For 8-bit AWQ, use Marlin "
                "backend by setting backend='awq:marlin' or backend='marlin'."
                if self.cls == "AutoAWQConfig"
                else "Currently, only 4-bit weight quantization is supported for AWQ, but got "
                f"{cfg.bits} bits."
            )
            self.collector.add(
                rules.Wna16ConfigRejected,
                "quantization_config",
                config_class=self.cls,
                vllm_text=text,
                ver=ver,
            )

    # ------------------------------------------------------------------------- modules ------

    def resolve(self, m: Module) -> Resolution:
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        if m.kind == EXPERTS:
            return self._experts(m)
        if not (m.is_linear or (m.kind == LM_HEAD and self.cfg.lm_head)):
            return unquantized(m)
        if self._skipped(m.name):
            return Resolution(
                module=m,
                method="UnquantizedLinearMethod",
                ignored=True,
                ignored_by=(m.name,),
                note=f"not quantized by the {self.cfg.kind.upper()} config",
            )
        bits, group = self._dynamic(m.name)
        return self._linear(m, bits, group)

    def _skipped(self, name: str) -> bool:
        cfg = self.cfg
        if cfg.kind == "awq":
            # vLLM 0.33 quant_utils.is_layer_skipped(match_mode="substring"); 0.11
            # awq.is_layer_skipped_awq: any(module_name in prefix)
            return any(x in name for x in cfg.modules_to_not_convert)
        for pattern in cfg.dynamic:  # vLLM 0.33 gptq_utils.get_dynamic_override: "-:" skips
            if pattern.startswith("-:") and re.match(pattern[2:], name):
                return True
        if not cfg.modules_in_block:
            return False
        # gptq_utils.is_layer_gptq_quantized: substring match, fused shards must agree
        short = name.rsplit(".", 1)[-1]
        shards = self.packed.get(short)
        names = [name.replace(short, s) for s in shards] if shards else [name]
        hits = {any(q in n for q in cfg.modules_in_block) for n in names}
        return hits == {False}

    def _dynamic(self, name: str) -> tuple[int, int]:
        cfg = self.cfg
        for pattern, over in cfg.dynamic.items():
            if pattern.startswith("-:") or not isinstance(over, dict):
                continue
            if re.match(pattern.removeprefix("+:"), name):
                return int(over.get("bits", cfg.bits)), int(over.get("group_size", cfg.group_size))
        return cfg.bits, cfg.group_size

    def _linear(self, m: Module, bits: int, group: int) -> Resolution:
        cfg, cls, plat = self.cfg, self.cls, self.plat
        args = self.cfg.args(bits, group)
        marlin_class = cls in ("AutoGPTQConfig", "GPTQMarlinConfig", "AutoAWQConfig")
        marlin_class = marlin_class or cls in ("AWQMarlinConfig", "CPUAWQConfig")
        base = dict(
            module=m,
            scheme=self.scheme,
            kernel_scheme="WNA16",
            weights=args,
            min_capability=None,
        )
        if cls == "GPTQConfig":
            return self._tp_aligned(m, group, bits) or Resolution(
                method="GPTQLinearMethod", **{**base, "kernel_scheme": "GPTQ_EXLLAMA"}
            )
        if cls == "AWQConfig":
            return self._tp_aligned(m, group, bits) or Resolution(
                method="AWQLinearMethod", **{**base, "kernel_scheme": "AWQ_GEMM"}
            )
        if not marlin_class:
            return Resolution(method=f"{cls} (not modelled)", **base)
        zp = cfg.kind == "awq" and not cfg.sym
        wtype = "uint4" if zp else (gptq_type(bits, cfg.sym) or f"uint{bits}")
        if cfg.kind == "awq" and plat.is_cuda:
            # vLLM 0.33 auto_awq.py get_quant_method: Marlin only where check_marlin_supported
            # (and the group fits the TP shard); otherwise the Triton AWQ kernels.
            if marlin_check(wtype, group, zp, plat) is not None or not self._group_fits(m, group):
                name = "AutoAWQLinearMethod" if cls == "AutoAWQConfig" else "AWQLinearMethod"
                return Resolution(method=name, **{**base, "kernel_scheme": "AWQ_GEMM"})
            auto = cls == "AutoAWQConfig"
            return Resolution(
                method="AutoAWQMarlinLinearMethod" if auto else "AWQMarlinLinearMethod", **base
            )
        if cfg.kind == "awq":  # CPU: Marlin method, CPU WNA16 kernel
            return Resolution(method="AutoAWQMarlinLinearMethod", **base)
        name = "AutoGPTQLinearMethod" if cls == "AutoGPTQConfig" else "GPTQMarlinLinearMethod"
        reason = None if plat.is_cpu else marlin_check(wtype, group, False, plat)
        if reason is not None:
            # verify_marlin_supported in the linear method's __init__
            self.collector.add(
                rules.MarlinUnsupported,
                m.name,
                key=reason,
                method=name,
                vllm_text=reason,
                ver=self.ver,
            )
            return Resolution(method="error", error=rules.MarlinUnsupported.code, **base)
        return Resolution(method=name, **base)

    def _group_fits(self, m: Module, group: int) -> bool:
        """check_marlin_supports_layer(allow_tile_padding=True): the group must not straddle."""
        if group <= 0 or group >= m.in_features or m.tp_split != "row":
            return True
        return (m.in_features // self.tp) % group == 0

    def _tp_aligned(self, m: Module, group: int, bits: int) -> Resolution | None:
        """GPTQLinearMethod / AWQLinearMethod create_weights: shards must stay aligned."""
        k = m.in_features // self.tp if m.tp_split == "row" else m.in_features
        n = m.out_features // self.tp if m.tp_split in ("column", "qkv") else m.out_features
        g = group if group > 0 else m.in_features
        what = None
        if k % g:
            what = "input"
        elif n % (32 // bits):
            what = "output"
        if what is None:
            return None
        text = (
            f"The {what} size is not aligned with the quantized weight shape. This can be caused "
            "by too large tensor parallel size."
        )
        self.collector.add(
            rules.Wna16TpMisaligned, m.name, key=what, side=what, vllm_text=text, ver=self.ver
        )
        return Resolution(module=m, method="error", error=rules.Wna16TpMisaligned.code)

    def _experts(self, m: Module) -> Resolution:
        cfg, cls = self.cfg, self.cls
        if cfg.kind == "awq" and any(x in m.name for x in cfg.modules_to_not_convert):
            return Resolution(
                module=m, method="UnquantizedFusedMoEMethod", ignored=True, ignored_by=(m.name,)
            )
        if cfg.kind == "gptq" and self._skipped(m.name):
            return Resolution(
                module=m, method="UnquantizedFusedMoEMethod", ignored=True, ignored_by=(m.name,)
            )
        args = cfg.args()
        padding = cls in ("AutoGPTQConfig", "AutoAWQConfig") and self.version.feature(
            "marlin_moe_tile_padding"
        )
        marlin = moe_marlin_ok(m, cfg.group_size, self.tp, bool(padding))
        if cls == "GPTQConfig":
            marlin = False  # vLLM 0.11 gptq.py: GPTQ MoE always falls back to MoeWNA16
        base = dict(module=m, scheme=self.scheme, weights=args, kernel_scheme="WNA16")
        if not marlin:
            note = "the Marlin MoE kernel does not fit this layer; vLLM falls back to MoeWNA16"
            return Resolution(
                method="MoeWNA16Method", moe_method="MoeWNA16Method", note=note, **base
            )
        name = {
            "AutoGPTQConfig": "AutoGPTQMoEMethod",
            "AutoAWQConfig": "AutoAWQMoEMethod",
            "GPTQMarlinConfig": "GPTQMarlinMoEMethod",
            "AWQMarlinConfig": "AWQMoEMethod",
            "AWQConfig": "AWQMoEMethod",
        }.get(cls, f"{cls} MoE (not modelled)")
        return Resolution(method=name, moe_method=name, **base)


def wna16_source(config_class: str) -> str:
    return SRC + {
        "AutoGPTQConfig": "auto_gptq.py",
        "AutoAWQConfig": "auto_awq.py",
        "GPTQMarlinConfig": "gptq_marlin.py",
        "AWQMarlinConfig": "awq_marlin.py",
        "GPTQConfig": "gptq.py",
        "AWQConfig": "awq.py",
    }.get(config_class, "")
