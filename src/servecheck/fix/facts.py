"""What is stored and what vLLM consults (the facts a fix is judged by), and where the ignore
list lives in config.json."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from servecheck.check_result import CheckResult
from servecheck.checks.expected import FLOAT_DTYPES
from servecheck.errors import InputError
from servecheck.model.inventory import (
    ATTENTION,
    EMBEDDING,
    EXPERTS,
    LM_HEAD,
    MTP_PROJ,
    NORM,
    ROUTER,
    Module,
)
from servecheck.quant.resolve import Resolution, ResolutionResult, resolve
from servecheck.quant.spec import QuantSpec, parse_quant

STRATEGIES = ("checkpoint", "conventional", "explicit")
# Earlier names of the strategies, still accepted.
STRATEGY_ALIASES = {"safe": "conventional", "comprehensive": "explicit"}

# Module storage states, from the weight dtypes in the headers.
FLOAT = "float"  # every unit's weight is a 16/32-bit float
QUANTIZED = "quantized"  # every unit's weight is stored quantized (fp8, packed int, ...)
MIXED = "mixed"  # some units float, some quantized
UNKNOWN = "unknown"  # config only, or no weight stored

# Finding codes an ignore-list fix can remove.
FIXABLE_CODES = frozenset({"K006", "K007", "K008", "R001", "R002", "R008", "R009"})
# Resolution errors caused by the ignore list splitting a fused layer or an MoE block.
SPLIT_CODES = frozenset({"R001", "R002", "R008"})


_NUM = re.compile(r"^\d+$")
ROUTER_RECIPE_HINT = " (ignore 're:.*mlp\\.gate$' in the quantization recipe)"


class FixError(InputError):
    """The checkpoint's config cannot be fixed by this command (unsupported method, no headers)."""


# ---------------------------------------------------------------------------------------------
# What is stored, what vLLM consults


@dataclass(frozen=True)
class ModuleFacts:
    """One module: the checkpoint names holding its weights and how they are stored."""

    module: Module
    consulted: bool  # vLLM consults the ignore list (and the quant config) for it
    units: tuple[str, ...]  # checkpoint names of its weights: shards, expert projections
    dtypes: tuple[str | None, ...]  # stored weight dtype per unit (None = not stored / unknown)
    state: str
    # False when vLLM quantizes it without consulting the ignore list (vLLM 0.11 MoE experts)
    ignorable: bool = True

    @property
    def name(self) -> str:
        return self.module.name

    @property
    def stored(self) -> str:
        """Stored weight dtypes, e.g. 'BF16' or 'mixed (BF16, F8_E4M3)'."""
        known = sorted({d for d in self.dtypes if d})
        if not known:
            return "not stored" if self.dtypes else "unknown"
        if self.state == MIXED:
            return f"mixed ({', '.join(known)})"
        return ", ".join(known)


def stored_weight(tensors, unit: str) -> tuple[str | None, str | None]:
    """(dtype, tensor name) of a unit's weight: `.weight` or packed `.weight_packed`."""
    for suffix in ("weight", "weight_packed"):
        t = tensors.get(f"{unit}.{suffix}")
        if t is not None:
            return t.dtype, f"{unit}.{suffix}"
    return None, None


def _state(dtypes: Sequence[str | None]) -> str:
    known = [d for d in dtypes if d]
    if not known:
        return UNKNOWN
    floats = [d in FLOAT_DTYPES for d in known]
    if all(floats):
        return FLOAT
    if not any(floats):
        return QUANTIZED
    return MIXED


def method_kind(quant: QuantSpec) -> str | None:
    if quant.ct is not None:
        return "ct"
    if quant.fp8 is not None:
        return "fp8"
    return None


def is_consulted(m: Module, kind: str | None) -> bool:
    """Whether vLLM consults the ignore list for this module.

    compressed-tensors: vLLM 0.33 compressed_tensors.py get_quant_method (LinearBase,
    ParallelLMHead, VocabParallelEmbedding, RoutedExperts built with the quant config);
    fp8: vLLM 0.33 fp8.py Fp8Config.get_quant_method (LinearBase and RoutedExperts). A 16-bit
    lm_head is treated as consulted for both: ignoring it is harmless in vLLM and other loaders
    (transformers' compressed-tensors, its FP8 quantizers) quantize it as an nn.Linear.
    """
    if m.kind == LM_HEAD:
        return True
    if not m.receives_quant_config:
        return False
    if kind == "fp8":
        return m.is_linear or m.kind == EXPERTS
    return m.is_linear or m.kind in (EXPERTS, EMBEDDING)


def module_units(m: Module) -> tuple[str, ...]:
    if m.kind == EXPERTS and m.experts is not None:
        return tuple(
            n for e in range(m.experts.num_experts) for n in m.experts.ckpt_names(m.name, e)
        )
    if m.shards:
        return tuple(s.ckpt_name for s in m.shards)
    if m.kind == EMBEDDING:
        return (m.name,)
    return ()


class IgnoreContext:
    """The facts an ignore list is judged against, for one checked checkpoint."""

    def __init__(self, report: CheckResult):
        self.report = report
        self.kind = method_kind(report.quant)
        self.config_only = report.checkpoint.config_only
        self.packed = {k: tuple(v) for k, v in report.inventory.packed_modules_mapping.items()}
        self.mode = report.version.feature("ct_ignore_fused")
        self.moe_lookup = report.version.feature("ct_moe_lookup")
        tensors = report.checkpoint.tensors or {}
        self.facts: dict[str, ModuleFacts] = {}
        # name -> [(module name, role)] for consulted modules; role "module" or "unit"
        self.index: dict[str, list[tuple[str, str]]] = {}
        # name -> description, for everything an ignore entry could name that vLLM never
        # consults (norms, biases, parameters, modules built without the quant config)
        self.others: dict[str, str] = {}
        for m in report.inventory.modules:
            units = module_units(m)
            if self.config_only:
                dtypes: tuple[str | None, ...] = tuple(None for _ in units)
            else:
                dtypes = tuple(stored_weight(tensors, u)[0] for u in units)
            consulted = is_consulted(m, self.kind)
            # vLLM 0.11 compressed_tensors_moe.py get_moe_method: the "Linear" target's scheme,
            # the ignore list never consulted for experts
            ignorable = consulted and not (
                m.kind == EXPERTS and self.kind == "ct" and self.moe_lookup == "linear_target"
            )
            f = ModuleFacts(m, consulted, units, dtypes, _state(dtypes), ignorable)
            self.facts[m.name] = f
            if ignorable:
                if m.kind == EXPERTS and self.kind == "fp8":
                    # vLLM 0.33 quant_utils.py is_layer_skipped: any ignored entry naming one
                    # of the block's experts skips the whole block
                    for n in (m.name, *units):
                        self.index.setdefault(n, []).append((m.name, "module"))
                elif m.kind == EXPERTS:
                    # compressed-tensors never tests the block name, only expert 0's
                    # projections (vLLM 0.33 compressed_tensors_moe.py get_moe_method)
                    for u in units:
                        self.index.setdefault(u, []).append((m.name, "unit"))
                else:
                    self.index.setdefault(m.name, []).append((m.name, "module"))
                    for u in units:
                        if u != m.name:
                            self.index.setdefault(u, []).append((m.name, "unit"))
            else:
                desc = _describe_unconsulted(m, report.model.architecture, self.kind)
                self.others.setdefault(m.name, desc)
                for u in units:
                    self.others.setdefault(u, desc)
            for p in m.params:
                self.others.setdefault(
                    f"{m.name}.{p.suffix}", f"parameter {p.suffix} of {m.name}, never quantized"
                )
            if m.bias:
                for s in m.shards:
                    self.others.setdefault(
                        f"{s.ckpt_name}.bias", "a bias (quantization applies to weights only)"
                    )
        self._baseline: dict[str, Resolution] | None = None
        self._templates: dict[tuple, list[str]] | None = None

    # -- resolutions --

    def resolve_with(self, entries: Sequence[str]) -> tuple[QuantSpec, ResolutionResult]:
        config = with_ignore(self.report, entries)
        return resolve_config(self.report, config)

    def baseline(self) -> dict[str, Resolution]:
        """Each module's resolution with an empty ignore list: what the config would quantize."""
        if self._baseline is None:
            self._baseline = self.resolve_with([])[1].by_name()
        return self._baseline

    def forbidden(self, name: str) -> str | None:
        """Why ignoring consulted module `name` would be wrong, or None."""
        f = self.facts[name]
        if self.config_only:
            res = self.report.resolution.by_name()[name]
            if res.quantized:
                return (
                    f"the config says {name} is stored quantized ({res.scheme}); ignoring it "
                    "would make vLLM expect 16-bit weights (headers not read)"
                )
            return None
        if f.state == QUANTIZED:
            return (
                f"{name} is stored quantized ({f.stored}): ignoring it makes vLLM build it "
                "16-bit, and its quantized weights and scales no longer load"
            )
        if f.state == MIXED:
            return f"{name} is stored partly quantized ({f.stored})"
        return None

    # -- names for pattern synthesis --

    def universe(self) -> list[str]:
        """Every name vLLM tests against the ignore list for consulted modules."""
        return list(self.index)

    def templates(self) -> dict[tuple, list[str]]:
        if self._templates is None:
            out: dict[tuple, list[str]] = {}
            for n in self.index:
                out.setdefault(template(n), []).append(n)
            self._templates = out
        return self._templates


def _describe_unconsulted(m: Module, arch: str, kind: str | None) -> str:
    if m.kind == NORM:
        return f"{m.name} is a norm ({m.layer_class}), never quantized"
    if m.kind == ROUTER:
        return f"{m.name} is a router gate {arch} builds without the quantization config"
    if m.kind == EMBEDDING and kind == "fp8" and m.receives_quant_config:
        # vLLM 0.33 fp8.py Fp8Config.get_quant_method: LinearBase and RoutedExperts only
        return f"{m.name} is an embedding, which the fp8 method never quantizes"
    if m.kind == EMBEDDING:
        return f"{m.name} is an embedding {arch} builds without the quantization config"
    if m.kind == EXPERTS:
        return (
            f"{m.name} are MoE experts this vLLM version quantizes with the 'Linear' target's "
            "scheme without consulting the ignore list"
        )
    if m.kind == ATTENTION:
        return f"{m.name} is an attention layer (its quantization is the KV-cache scheme)"
    if m.kind == MTP_PROJ:
        return f"{m.name} is the MTP eh_proj, a plain Linear built without the quantization config"
    return f"{m.name} ({m.layer_class}) is built without the quantization config"


def template(name: str) -> tuple:
    """A name with its numeric components (layer, expert index) replaced by None."""
    return tuple(None if _NUM.match(t) else t for t in name.split("."))


def display_template(name: str) -> str:
    return ".".join("{i}" if _NUM.match(t) else t for t in name.split("."))


# Where the ignore list lives in config.json


@dataclass(frozen=True)
class IgnoreLocation:
    path: tuple[str, ...]  # keys from the top of config.json to the quantization config
    key: str  # "ignore", "ignored_layers" or "modules_to_not_convert"

    def __str__(self) -> str:
        return ".".join((*self.path, self.key))


def ignore_location(report: CheckResult) -> IgnoreLocation:
    quant = report.quant
    kind = method_kind(quant)
    source = quant.source or ""
    config = report.checkpoint.config
    if source == "config.json quantization_config":
        path: tuple[str, ...] = ("quantization_config",)
    elif source == "config.json compression_config":
        path = ("compression_config",)
    elif source == "text_config.quantization_config":
        nested = next(
            k
            for k in ("text_config", "language_config", "llm_config")
            if isinstance(config.get(k), dict)
        )
        path = (nested, "quantization_config")
    else:
        raise FixError(
            f"the quantization config comes from {source or 'nowhere'}; servecheck fix edits "
            "config.json only"
        )
    if kind == "ct":
        return IgnoreLocation(path, "ignore")
    if kind == "fp8":
        raw = quant.raw
        # vLLM 0.33 fp8.py Fp8Config.from_config: ignored_layers, else modules_to_not_convert
        if raw.get("ignored_layers"):
            return IgnoreLocation(path, "ignored_layers")
        if "modules_to_not_convert" in raw:
            return IgnoreLocation(path, "modules_to_not_convert")
        return IgnoreLocation(path, "ignored_layers")
    method = quant.method or "none"
    raise FixError(
        f"servecheck fix edits compressed-tensors and fp8 ignore lists; this checkpoint's "
        f"quantization method is {method}"
    )


def with_ignore(report: CheckResult, entries: Sequence[str]) -> dict:
    """A deep copy of the checkpoint's config.json with the ignore list replaced."""
    loc = ignore_location(report)
    config = copy.deepcopy(report.checkpoint.config)
    node = config
    for k in loc.path:
        node = node[k]
    node[loc.key] = list(entries)
    return config


def resolve_config(report: CheckResult, config: dict) -> tuple[QuantSpec, ResolutionResult]:
    """Resolve every module of the report's inventory under another config (in memory)."""
    quant = parse_quant(config, report.checkpoint.hf_quant_config, report.version)
    return quant, resolve(report.inventory, quant, report.version, report.target.capability)
