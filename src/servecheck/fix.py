"""Propose a corrected quantization ignore list for config.json, verified against the headers.

Weights are never touched. The safetensors headers are the truth about how each module is
stored; the config's ignore list is a claim about it. A fix is a new ignore list that makes
every module vLLM consults resolve the way it is stored, proven by resolving again.

    ctx = IgnoreContext(report)                    what is stored, what vLLM consults
    proposal = propose(report, "checkpoint")       new config, entry verdicts, verification
    new_text = render_config(original_text, proposal.config)
    write_in_place(config_path, new_text) / write_overlay(src, out, new_text)

Strategies:
    checkpoint      the ignore list derived from the headers: exactly the Linear modules stored
                    unquantized that the config would quantize (plus a 16-bit lm_head), in the
                    shortest exact form (`re:` patterns where exact over this inventory).
    safe            the seed investigation's Option 2 (lm_head, embed_tokens, model.norm),
                    adapted to this model's names and verified entry by entry.
    comprehensive   the seed's Option 3: Option 2, its four regexes, and the "working" model's
                    per-layer entries (norms, biases, router gates, correction biases) generated
                    for this model's real layers, each verified.
    safe and comprehensive keep the current entries that pass and add the entries the headers
    require, so their result is correct too; what they add beyond that is shown for what it is.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import regex

from servecheck.checks.expected import FLOAT_DTYPES, linear_specs
from servecheck.core import CheckReport
from servecheck.errors import InputError
from servecheck.findings.registry import Finding
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

STRATEGIES = ("checkpoint", "safe", "comprehensive")

# Module storage states, from the weight dtypes in the headers.
FLOAT = "float"  # every unit's weight is a 16/32-bit float
QUANTIZED = "quantized"  # every unit's weight is stored quantized (fp8, packed int, ...)
MIXED = "mixed"  # some units float, some quantized
UNKNOWN = "unknown"  # config only, or no weight stored

# Finding codes an ignore-list fix can remove.
FIXABLE_CODES = frozenset({"K006", "K007", "K008", "R001", "R002", "R008", "R009"})
# Resolution errors caused by the ignore list splitting a fused layer or an MoE block.
SPLIT_CODES = frozenset({"R001", "R002", "R008"})

# The seed investigation's proposed lists (shared/seed: "Option 2" and "Option 3").
SEED_OPTION2 = ("lm_head", "embed_tokens", "model.norm")
SEED_OPTION3_PATTERNS = (
    r"re:.*\.input_layernorm$",
    r"re:.*\.post_attention_layernorm$",
    r"re:.*\.self_attn\..*_norm$",
    r"re:.*\.mlp\.gate\.e_score_correction_bias$",
)

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


def _stored_weight(tensors, unit: str) -> tuple[str | None, str | None]:
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

    def __init__(self, report: CheckReport):
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
                dtypes = tuple(_stored_weight(tensors, u)[0] for u in units)
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


# ---------------------------------------------------------------------------------------------
# Where the ignore list lives in config.json


@dataclass(frozen=True)
class IgnoreLocation:
    path: tuple[str, ...]  # keys from the top of config.json to the quantization config
    key: str  # "ignore", "ignored_layers" or "modules_to_not_convert"

    def __str__(self) -> str:
        return ".".join((*self.path, self.key))


def ignore_location(report: CheckReport) -> IgnoreLocation:
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


def with_ignore(report: CheckReport, entries: Sequence[str]) -> dict:
    """A deep copy of the checkpoint's config.json with the ignore list replaced."""
    loc = ignore_location(report)
    config = copy.deepcopy(report.checkpoint.config)
    node = config
    for k in loc.path:
        node = node[k]
    node[loc.key] = list(entries)
    return config


def recheck(report: CheckReport, config: dict) -> CheckReport:
    """What `check` reports for the same checkpoint with another config.json, computed in
    memory (nothing is written)."""
    from servecheck.api import check_checkpoint

    ckpt = dataclasses.replace(report.checkpoint, config=config)
    return check_checkpoint(ckpt, vllm_version=report.version.requested, target=report.target)


def resolve_config(report: CheckReport, config: dict) -> tuple[QuantSpec, ResolutionResult]:
    """Resolve every module of the report's inventory under another config (in memory)."""
    quant = parse_quant(config, report.checkpoint.hf_quant_config, report.version)
    return quant, resolve(report.inventory, quant, report.version, report.target.capability)


# ---------------------------------------------------------------------------------------------
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


def _resolves_quantized(res: Resolution) -> bool:
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
        quantized = _resolves_quantized(res)
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
        dtype, name = _stored_weight(tensors, u)
        if dtype is None:
            continue
        if name != f"{u}.{suffix}" or (want.dtypes is not None and dtype not in want.dtypes):
            expected = "/".join(sorted(want.dtypes or ())) + f" {suffix}"
            return (
                f"stored as {name.rsplit('.', 1)[-1]} {dtype} but {res.scheme} expects {expected}"
            )
    return None


# ---------------------------------------------------------------------------------------------
# Entry verdicts (why an ignore entry is kept or refused)


@dataclass(frozen=True)
class EntryVerdict:
    entry: str
    source: str  # "current", "headers", "seed option 2", "seed option 3", ...
    accepted: bool
    code: str  # short reason key, for grouping: see REASONS
    reason: str
    covers: tuple[str, ...] = ()  # consulted modules it covers (vLLM names)

    def as_dict(self) -> dict:
        return {
            "entry": self.entry,
            "source": self.source,
            "accepted": self.accepted,
            "reason_code": self.code,
            "reason": self.reason,
            "covers": list(self.covers[:20]),
            "covers_count": len(self.covers),
        }


REASONS = {
    "keeps": "keeps modules stored 16-bit unquantized",
    "no-effect": "accepted, but changes nothing in vLLM",
    "unknown": "accepted; stored dtypes unknown (config only)",
    "nothing": "matches nothing vLLM quantizes",
    "quantized": "would ignore modules stored quantized",
    "split": "would split a fused layer or an MoE block",
    "fp8-regex": "fp8 ignore lists match exact names only",
    "duplicate": "duplicate entry",
    "redundant": "left out of the derived list",
}


def _matches(ctx: IgnoreContext, entry: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(consulted hits as (module, role, name), descriptions of unconsulted names hit)."""
    hits: list[tuple[str, str, str]] = []
    other: list[str] = []
    if entry.startswith("re:") and ctx.kind != "fp8":
        rx = regex.compile(entry[3:])
        for name, owners in ctx.index.items():
            if rx.match(name) is not None:
                hits.extend((mod, role, name) for mod, role in owners)
        for name, desc in ctx.others.items():
            if rx.match(name) is not None:
                other.append(desc)
        return hits, other
    hits.extend((mod, role, entry) for mod, role in ctx.index.get(entry, ()))
    if ctx.kind == "fp8" and "experts" in entry:
        # vLLM 0.33 quant_utils.py is_layer_skipped: an experts prefix is skipped when it is a
        # substring of an ignored entry that mentions "experts"
        for f in ctx.facts.values():
            if f.ignorable and f.module.kind == EXPERTS and f.name in entry and f.name != entry:
                hits.append((f.name, "module", entry))
    if entry in ctx.others:
        other.append(ctx.others[entry])
    return hits, other


def evaluate_entries(ctx: IgnoreContext, entries: Sequence[tuple[str, str]]) -> list[EntryVerdict]:
    """Judge each (entry, source): refuse entries that match nothing vLLM quantizes, ignore a
    module stored quantized, or split a fused layer / MoE block (given the accepted others)."""
    verdicts: dict[int, EntryVerdict] = {}
    hits_of: dict[int, list[tuple[str, str, str]]] = {}
    seen: set[str] = set()
    for i, (entry, source) in enumerate(entries):
        if entry in seen:
            verdicts[i] = EntryVerdict(entry, source, False, "duplicate", "already listed")
            continue
        seen.add(entry)
        if ctx.kind == "fp8" and entry.startswith("re:"):
            verdicts[i] = EntryVerdict(
                entry,
                source,
                False,
                "fp8-regex",
                "fp8 ignored_layers are compared by exact name (vLLM 0.33 quant_utils.py "
                "is_layer_skipped, match_mode 'exact'): a 're:' entry matches nothing",
            )
            continue
        hits, other = _matches(ctx, entry)
        if not hits:
            if other:
                desc = other[0] + (f" (and {len(other) - 1} more)" if len(other) > 1 else "")
                reason = f"matches nothing vLLM quantizes: {desc}"
            else:
                reason = "matches no module of this model"
                bare = [n for n in ctx.index if n.endswith("." + entry)]
                if bare and not entry.startswith("re:"):
                    reason += f" (vLLM compares names exactly: {entry!r} is not {bare[0]!r})"
            verdicts[i] = EntryVerdict(entry, source, False, "nothing", reason)
            continue
        bad = []
        for mod, _, _ in hits:
            why = ctx.forbidden(mod)
            if why and mod not in bad:
                bad.append(mod)
        if bad:
            why = ctx.forbidden(bad[0])
            more = f" (and {len(bad) - 1} more modules)" if len(bad) > 1 else ""
            verdicts[i] = EntryVerdict(
                entry, source, False, "quantized", f"{why}{more}", tuple(bad)
            )
            continue
        hits_of[i] = hits
    # Split check over the accepted set, repeated until stable.
    while True:
        split = _splits(ctx, hits_of, entries)
        if not split:
            break
        for i, reason in split.items():
            entry, source = entries[i]
            covers = tuple(dict.fromkeys(mod for mod, _, _ in hits_of[i]))
            verdicts[i] = EntryVerdict(entry, source, False, "split", reason, covers)
            del hits_of[i]
    base = None if ctx.config_only else ctx.baseline()
    for i, hits in hits_of.items():
        entry, source = entries[i]
        covers = tuple(dict.fromkeys(mod for mod, _, _ in hits))
        if base is None:
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "unknown",
                f"covers {_names(covers)}; stored dtypes unknown (config only)",
                covers,
            )
            continue
        effective = [m for m in covers if _resolves_quantized(base[m])]
        if effective:
            stored = sorted({ctx.facts[m].stored for m in effective})
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "keeps",
                f"keeps {_names(effective)} unquantized, as stored ({', '.join(stored)})",
                covers,
            )
        else:
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "no-effect",
                f"no effect in vLLM: {_names(covers)} would not be quantized anyway ("
                + (
                    "fp8 quantizes LinearBase layers and experts only"
                    if ctx.kind == "fp8"
                    else "no config group targets it"
                )
                + ")",
                covers,
            )
    return [verdicts[i] for i in range(len(entries))]


def _names(names: Sequence[str], limit: int = 2) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _splits(
    ctx: IgnoreContext,
    hits_of: dict[int, list[tuple[str, str, str]]],
    entries: Sequence[tuple[str, str]],
) -> dict[int, str]:
    """Entries whose units leave a fused layer or MoE block partly covered."""
    whole: set[str] = set()
    covered: dict[str, set[str]] = {}
    for i, hits in hits_of.items():
        is_regex = entries[i][0].startswith("re:")
        for mod, role, _ in hits:
            if role == "module":
                f = ctx.facts[mod]
                # vLLM 0.11/0.24 should_ignore_layer test a fused layer's shards unless its
                # fused name is listed verbatim: a regex on the fused name does not count
                if (
                    ctx.kind == "ct"
                    and is_regex
                    and ctx.mode == "shards_unless_listed"
                    and f.module.short_name in ctx.packed
                ):
                    continue
                whole.add(mod)
            else:
                covered.setdefault(mod, set())
        for mod, role, name in hits:
            if role == "unit":
                covered[mod].add(name)
    out: dict[int, str] = {}
    for mod, units in covered.items():
        f = ctx.facts[mod]
        if mod in whole or units >= set(f.units):
            continue
        missing = [u for u in f.units if u not in units]
        got = sorted({u.rsplit(".", 1)[-1] for u in units})
        miss = sorted({u.rsplit(".", 1)[-1] for u in missing})
        if f.module.kind == EXPERTS:
            n_exp = len({u.rsplit(".", 2)[-2] for u in units})
            reason = (
                f"splits MoE block {mod}: covers {', '.join(got[:3])} of {n_exp} of its "
                f"{len(f.units) // 3} experts, not all projections of all experts (vLLM builds "
                "one method for the block and raises ValueError when they differ)"
            )
        else:
            reason = (
                f"splits fused layer {mod}: covers {', '.join(got[:4])} but not "
                f"{', '.join(miss[:4])} (vLLM requires one scheme for all shards and raises "
                "ValueError)"
            )
        for i, hits in hits_of.items():
            if any(m == mod and role == "unit" for m, role, _ in hits):
                out.setdefault(i, reason)
    return out


# ---------------------------------------------------------------------------------------------
# The checkpoint strategy: derive the list from the headers


def required(ctx: IgnoreContext) -> list[ModuleFacts]:
    """Consulted modules stored 16-bit that the config would quantize (and a 16-bit lm_head)."""
    base = ctx.baseline()
    out = []
    for f in ctx.facts.values():
        if not f.ignorable or f.state != FLOAT:
            continue
        if f.module.kind == LM_HEAD or _resolves_quantized(base[f.name]):
            out.append(f)
    return out


def _allowed_names(ctx: IgnoreContext) -> set[str]:
    """Names a derived pattern may match: those of consulted modules stored 16-bit."""
    return {
        n
        for f in ctx.facts.values()
        if f.ignorable and f.state == FLOAT
        for n in (f.name, *f.units)
    }


def derive_entries(ctx: IgnoreContext, use_regex: bool = True) -> list[tuple[str, str]]:
    """The shortest exact ignore list for the required modules, as (entry, explanation)."""
    req = required(ctx)
    if ctx.kind == "fp8":
        out = []
        for f in req:
            if f.module.kind == EXPERTS:
                # the block prefix: is_layer_skipped's experts rule skips the whole block
                out.append((f.name, f"MoE block stored {f.stored}"))
            else:
                out += [(u, f"stored {f.stored}") for u in f.units]
        return out
    names: list[str] = []
    for f in req:
        names.extend(f.units)
    allowed = _allowed_names(ctx)
    groups: dict[tuple, list[str]] = {}
    for n in names:
        groups.setdefault(template(n), []).append(n)
    entries: list[tuple[str, str]] = []
    order: dict[str, int] = {n: i for i, n in enumerate(names)}
    for tpl, group in groups.items():
        pattern = _exact_regex(ctx, tpl, group, allowed) if use_regex else None
        if pattern is not None:
            entries.append((pattern, f"{len(group)} × {display_template(group[0])}"))
            continue
        per_layer = _per_layer_regexes(ctx, tpl, group, allowed) if use_regex else None
        if per_layer is not None:
            entries += per_layer
            continue
        entries += [(n, "") for n in group]
    # lm_head last, as llm-compressor writes it; otherwise inventory order
    first = {}
    for e, _ in entries:
        first[e] = min((order[n] for n in names if _entry_matches(e, n)), default=len(order))
    entries.sort(key=lambda x: (x[0] == "lm_head", first[x[0]]))
    return entries


def _entry_matches(entry: str, name: str) -> bool:
    if entry.startswith("re:"):
        return regex.match(entry[3:], name) is not None
    return entry == name


def _regex_from(tokens: Sequence[str | None], anchored_prefix: str = ".*") -> str:
    parts = [r"\d+" if t is None else re.escape(t) for t in tokens]
    return "re:" + anchored_prefix + r"\.".join(parts) + "$"


def _exact_regex(ctx: IgnoreContext, tpl: tuple, group: list[str], allowed: set[str]) -> str | None:
    """The shortest `re:.*<suffix>$` matching every name of `group` and nothing outside the
    allowed names, over every name vLLM tests; None when the template has no numeric part
    (a singleton like lm_head stays a name) or no suffix is exact."""
    if None not in tpl:
        return None
    universe = ctx.universe()
    group_set = set(group)
    n = len(tpl)
    for start in range(n - 2, -1, -1):
        if tpl[start] is None:
            continue
        # vLLM matches `re:` with regex.match: anchored at the start only; `.*` + `$` anchors
        # the suffix (vLLM 0.33 quantization/utils/config_utils.py is_equal_or_regex_match)
        pattern = _regex_from(tpl[start:], ".*" if start > 0 else "")
        rx = regex.compile(pattern[3:])
        hit = {u for u in universe if rx.match(u) is not None}
        if group_set <= hit and hit <= allowed:
            return pattern
    return None


def _per_layer_regexes(
    ctx: IgnoreContext, tpl: tuple, group: list[str], allowed: set[str]
) -> list[tuple[str, str]] | None:
    """For names with a layer and an expert index: one anchored regex per layer."""
    numeric = [i for i, t in enumerate(tpl) if t is None]
    if len(numeric) < 2:
        return None
    first = numeric[0]
    by_layer: dict[str, list[str]] = {}
    for g in group:
        by_layer.setdefault(g.split(".")[first], []).append(g)
    universe = ctx.universe()
    out = []
    for layer, names in by_layer.items():
        tokens = list(tpl)
        tokens[first] = layer
        pattern = _regex_from(tokens, "")
        rx = regex.compile(pattern[3:])
        hit = {u for u in universe if rx.match(u) is not None}
        if not (set(names) <= hit and hit <= allowed):
            return None
        out.append((pattern, f"{len(names)} × {display_template(names[0])} in layer {layer}"))
    return out


# ---------------------------------------------------------------------------------------------
# Proposals


@dataclass(frozen=True)
class FixProposal:
    """A proposed ignore list, how each entry was judged, and whether it verifies."""

    report: CheckReport
    strategy: str
    location: IgnoreLocation
    before: tuple[str, ...]
    after: tuple[str, ...]
    verdicts: tuple[EntryVerdict, ...]
    required: tuple[str, ...]  # modules the headers say must stay unquantized
    before_problems: tuple[Disagreement, ...]
    remaining: tuple[Disagreement, ...]  # problems the new list leaves (not fixable by config)
    config: dict
    resolution: ResolutionResult
    # the full check with the new config (in memory); None when nothing was re-checked
    after_report: CheckReport | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def after_findings(self) -> tuple[Finding, ...]:
        return self.after_report.findings if self.after_report else ()

    @property
    def resolved_codes(self) -> tuple[str, ...]:
        """Fixable finding codes of the original check that the new config removes."""
        before = {f.code for f in self.report.findings if f.code in FIXABLE_CODES}
        after = {f.code for f in self.after_findings}
        return tuple(sorted(before - after))

    @property
    def changed(self) -> bool:
        return list(self.before) != list(self.after)

    @property
    def unfixable(self) -> tuple[Disagreement, ...]:
        return tuple(d for d in self.remaining if not d.fixable)

    @property
    def verified(self) -> bool:
        """Every problem an ignore list can fix is fixed (re-resolved in memory)."""
        return not any(d.fixable for d in self.remaining)

    @property
    def dropped(self) -> tuple[EntryVerdict, ...]:
        after = set(self.after)
        return tuple(v for v in self.verdicts if v.source == "current" and v.entry not in after)

    @property
    def added(self) -> tuple[str, ...]:
        before = set(self.before)
        return tuple(e for e in self.after if e not in before)


def propose(report: CheckReport, strategy: str = "checkpoint") -> FixProposal:
    """Propose a new ignore list for `report`'s checkpoint; raises FixError when impossible."""
    if strategy not in STRATEGIES:
        raise FixError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if report.quant.method is None:
        raise FixError("the checkpoint is not quantized: there is no ignore list to fix")
    location = ignore_location(report)
    ctx = IgnoreContext(report)
    notes: list[str] = []
    if ctx.config_only and strategy == "checkpoint":
        raise FixError(
            "--strategy checkpoint derives the ignore list from the safetensors headers, and "
            f"{report.location} is a config only; point at the checkpoint folder, or use "
            "--strategy safe / comprehensive"
        )
    before = tuple(report.quant.ignore_list)
    before_problems = tuple(disagreements(ctx, report.resolution))
    req_names = () if ctx.config_only else tuple(f.name for f in required(ctx))
    if not ctx.config_only:
        base = ctx.baseline()
        quantizable = [
            f for f in ctx.facts.values() if f.consulted and _resolves_quantized(base[f.name])
        ]
        if quantizable and all(f.state == FLOAT for f in quantizable):
            notes.append(
                "every module the config quantizes is stored 16-bit: the checkpoint is not "
                "quantized, and removing quantization_config altogether is the simpler fix"
            )
    if strategy == "checkpoint":
        derived = _derive_verified(ctx)
        after = [e for e, _ in derived]
        candidates = [(e, "headers") for e in after]
        candidates += [(e, "current") for e in before if e not in set(after)]
        verdicts = evaluate_entries(ctx, candidates)
        # The derived entries stand; current entries not in the new list are explained.
        verdicts = [_dropped(v) if v.source == "current" and v.accepted else v for v in verdicts]
    else:
        candidates = [(e, "current") for e in before]
        candidates += _option_entries(ctx, strategy)
        if not ctx.config_only:
            candidates += [(e, "headers") for e, _ in _derive_verified(ctx)]
        else:
            notes.append(
                "config only: stored dtypes are unknown, so entries are judged against what "
                "the config claims (modules it quantizes are presumed stored quantized)"
            )
        verdicts = _drop_redundant_derived(ctx, evaluate_entries(ctx, candidates))
        after = [v.entry for v in verdicts if v.accepted]
    config = with_ignore(report, after)
    _, resolution = resolve_config(report, config)
    remaining = tuple(disagreements(ctx, resolution))
    if strategy != "checkpoint":
        extra = [v for v in verdicts if v.accepted and v.source.startswith("seed")]
        if extra and all(v.code == "no-effect" for v in extra):
            notes.append(
                f"the {len(extra)} accepted seed entries change nothing in how vLLM loads this "
                "checkpoint; the entries that matter come from the headers"
            )
    return FixProposal(
        report=report,
        strategy=strategy,
        location=location,
        before=before,
        after=tuple(after),
        verdicts=tuple(verdicts),
        required=req_names,
        before_problems=before_problems,
        remaining=remaining,
        config=config,
        resolution=resolution,
        after_report=recheck(report, config),
        notes=tuple(notes),
    )


def _drop_redundant_derived(ctx: IgnoreContext, verdicts: list[EntryVerdict]) -> list[EntryVerdict]:
    """Header-derived entries whose every match an accepted earlier entry already covers."""
    covered: set[tuple[str, str]] = set()
    out = []
    for v in verdicts:
        if not v.accepted:
            out.append(v)
            continue
        hits = {(mod, name) for mod, _, name in _matches(ctx, v.entry)[0]}
        if v.source == "headers" and hits and hits <= covered:
            v = EntryVerdict(
                v.entry, v.source, False, "redundant", "already covered by the entries above"
            )
        else:
            covered |= hits
        out.append(v)
    return out


def _dropped(v: EntryVerdict) -> EntryVerdict:
    """A current entry the derived list leaves out although it would be harmless."""
    if v.code == "keeps":
        reason = "dropped: the derived entries cover " + _names(v.covers)
    else:
        reason = "dropped: " + v.reason
    return EntryVerdict(v.entry, v.source, False, "redundant", reason, v.covers)


def _derive_verified(ctx: IgnoreContext) -> list[tuple[str, str]]:
    """Derived entries in regex form when that verifies, else exact names."""
    derived = derive_entries(ctx, use_regex=True)
    if any(e.startswith("re:") for e, _ in derived):
        _, res = ctx.resolve_with([e for e, _ in derived])
        if any(d.fixable for d in disagreements(ctx, res)):
            derived = derive_entries(ctx, use_regex=False)
    return derived


_SEED2_SOURCE = "seed option 2"
_SEED3_SOURCE = "seed option 3"


def _option_entries(ctx: IgnoreContext, strategy: str) -> list[tuple[str, str]]:
    """The seed's Option 2 (safe) or Option 3 (comprehensive), adapted to this model."""
    inv = ctx.report.inventory
    embed = next((m.name for m in inv.modules if m.kind == EMBEDDING), None)
    final_norm = next((m.name for m in inv.modules if m.kind == NORM and m.layer is None), None)
    out: list[tuple[str, str]] = []
    for entry in SEED_OPTION2:
        if entry == "embed_tokens" and embed and embed != entry:
            out.append((embed, f"{_SEED2_SOURCE} (seed wrote 'embed_tokens')"))
        elif entry == "model.norm" and final_norm and final_norm != entry:
            out.append((final_norm, f"{_SEED2_SOURCE} (seed wrote 'model.norm')"))
        else:
            out.append((entry, _SEED2_SOURCE))
    if strategy != "comprehensive":
        return out
    out += [(p, _SEED3_SOURCE) for p in SEED_OPTION3_PATTERNS]
    # The "working" model's per-layer entries, generated for this model's real layers.
    layers = ctx.report.model.num_layers + ctx.report.model.num_nextn_predict_layers
    src = f"{_SEED3_SOURCE} (per-layer, {layers} layers)"
    for m in inv.modules:
        if m.kind == NORM and m.layer is not None:
            out.append((m.name, src))
        elif m.kind == ROUTER:
            out.append((m.name, src))
            out += [(f"{m.name}.{p.suffix}", src) for p in m.params]
        if m.bias and m.kind != ROUTER:
            out += [(f"{s.ckpt_name}.bias", src) for s in m.shards]
    return out


# ---------------------------------------------------------------------------------------------
# config.json text, diff, writing


def render_config(original: str, config: dict) -> str:
    """config as JSON text in the original file's layout (indent, key order, ASCII escaping)
    when the original round-trips, so the diff shows only the ignore list."""
    try:
        parsed = json.loads(original)
    except json.JSONDecodeError:
        parsed = None
    trailing = "\n" if original.endswith("\n") else ""
    if parsed is not None:
        for indent in (2, 4, "\t", 1, 3, None):
            for ascii_ in (False, True):
                if json.dumps(parsed, indent=indent, ensure_ascii=ascii_) + trailing == original:
                    return json.dumps(config, indent=indent, ensure_ascii=ascii_) + trailing
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def unified_diff(original: str, new: str, name: str = "config.json") -> str:
    return "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )


def config_path(model: str | Path) -> Path:
    path = Path(model)
    return path / "config.json" if path.is_dir() else path


@dataclass(frozen=True)
class WriteResult:
    path: Path  # the config.json written
    backup: Path | None = None  # config.json.orig (--write)
    links: tuple[str, ...] = ()  # names linked into an overlay (--out)


def write_in_place(cfg_path: Path, new_text: str, force: bool = False) -> WriteResult:
    """Replace config.json atomically (temp file + os.replace), keeping config.json.orig.

    Refuses to overwrite an existing .orig unless `force`. A symlinked config.json (Hugging
    Face cache snapshots) is replaced by a regular file; the blob it pointed to is untouched.
    """
    backup = cfg_path.with_name(cfg_path.name + ".orig")
    if backup.exists() and not force:
        raise FixError(
            f"{backup} already exists (a previous fix?); move it away or pass --force to "
            "overwrite it"
        )
    original = cfg_path.read_bytes()
    mode = cfg_path.stat().st_mode & 0o777
    _atomic_write(backup, original, mode)
    _atomic_write(cfg_path, new_text.encode("utf-8"), mode)
    return WriteResult(cfg_path, backup=backup)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_overlay(cfg_path: Path, out: Path, new_text: str, force: bool = False) -> WriteResult:
    """An overlay folder vLLM can load: the new config.json plus symlinks to every other file
    of the checkpoint folder (shards, index, tokenizer, generation config)."""
    src = cfg_path.parent.resolve()
    out_abs = Path(os.path.abspath(out))
    if out_abs == src:
        raise FixError("--out must be another folder than the checkpoint's (use --write)")
    if out_abs.exists():
        if not out_abs.is_dir():
            raise FixError(f"{out} exists and is not a folder")
        if any(out_abs.iterdir()) and not force:
            raise FixError(f"{out} is not empty; pass --force to replace its links and config")
    out_abs.mkdir(parents=True, exist_ok=True)
    links = []
    skip = {cfg_path.name, "config.json", "config.json.orig"}
    for entry in sorted(src.iterdir()):
        if entry.name in skip or entry.name.startswith("."):
            continue
        if entry.resolve() == out_abs.resolve():
            continue
        link = out_abs / entry.name
        if link.is_symlink() or link.exists():
            if not force:
                raise FixError(f"{link} exists; pass --force to replace it")
            if link.is_dir() and not link.is_symlink():
                raise FixError(f"{link} is a folder; not replacing it")
            link.unlink()
        os.symlink(os.path.abspath(cfg_path.parent / entry.name), link)
        links.append(entry.name)
    _atomic_write(out_abs / "config.json", new_text.encode("utf-8"))
    return WriteResult(out_abs / "config.json", links=tuple(links))


def group_verdicts(verdicts: Iterable[EntryVerdict]) -> list[tuple[str, list[EntryVerdict]]]:
    """Verdicts grouped by (layer-independent entry, accepted, reason code), in first order."""
    groups: dict[tuple, list[EntryVerdict]] = {}
    for v in verdicts:
        key = (display_template(v.entry), v.accepted, v.code, v.source)
        groups.setdefault(key, []).append(v)
    return [(k[0], vs) for k, vs in groups.items()]


# ---------------------------------------------------------------------------------------------
# The whole command: check, propose, verify by checking the result, write


@dataclass(frozen=True)
class FixOutcome:
    proposal: FixProposal
    config_path: Path
    original_text: str
    new_text: str
    diff: str
    after: CheckReport  # `check` re-run on the result (the report itself when nothing changed)
    written: WriteResult | None = None

    @property
    def before(self) -> CheckReport:
        return self.proposal.report

    def code_changes(self) -> list[tuple[str, str, str]]:
        """(code, severity, status) for every finding code before or after: 'gone', 'remains',
        'new'."""
        before = {f.code: f.severity.value for f in self.before.findings}
        after = {f.code: f.severity.value for f in self.after.findings}
        out = []
        for code in sorted(set(before) | set(after)):
            if code in before and code not in after:
                out.append((code, before[code], "gone"))
            elif code in before:
                out.append((code, after[code], "remains"))
            else:
                out.append((code, after[code], "new"))
        return out

    @property
    def targeted(self) -> list[tuple[str, str]]:
        """(code, 'gone'|'remains') for the findings an ignore-list fix addresses."""
        return [
            (code, status)
            for code, _, status in self.code_changes()
            if code in FIXABLE_CODES and status != "new"
        ]

    @property
    def exit_code(self) -> int:
        """0 when the result loads (no error findings) and nothing is left unfixable, else 1."""
        if self.proposal.unfixable or self.after.verdict == "fail":
            return 1
        return 0


def run_fix(
    model: str | Path,
    strategy: str = "checkpoint",
    *,
    vllm_version: str | None = None,
    target=None,
    write: bool = False,
    out: str | Path | None = None,
    force: bool = False,
) -> FixOutcome:
    """Check `model`, propose a fix, re-check the result, and optionally write it.

    The re-check runs servecheck's `check` in memory on the checkpoint with the new config, so
    the user's folder is only written with `write` (atomically, keeping config.json.orig) and
    `out` names a new overlay folder.
    """
    from servecheck.api import NO_TARGET, check

    target = target or NO_TARGET
    if write and out is not None:
        raise FixError("use --write or --out, not both")
    report = check(model, vllm_version=vllm_version, target=target)
    proposal = propose(report, strategy)
    cfg_path = config_path(model)
    original = cfg_path.read_text(encoding="utf-8")
    new_text = render_config(original, proposal.config) if proposal.changed else original
    diff = unified_diff(original, new_text, cfg_path.name)
    after = proposal.after_report if proposal.changed and proposal.after_report else report
    written = None
    if write or out is not None:
        if not proposal.changed:
            raise FixError("nothing to write: the proposed ignore list equals the current one")
        if not proposal.verified:
            raise FixError("the proposed list does not verify; not writing it")
        if write:
            written = write_in_place(cfg_path, new_text, force=force)
        else:
            assert out is not None
            written = write_overlay(cfg_path, Path(out), new_text, force=force)
            after = check(Path(out), vllm_version=vllm_version, target=target)
    return FixOutcome(proposal, cfg_path, original, new_text, diff, after, written)


def outcome_dict(o: FixOutcome) -> dict:
    """The JSON view of a fix (field names are a contract: extend, don't rename)."""
    p = o.proposal

    def dis(d: Disagreement) -> dict:
        return {
            "module": d.module,
            "kind": d.kind,
            "stored": d.stored,
            "resolved": d.resolved,
            "fixable": d.fixable,
            "reason": d.reason,
            "remedy": d.remedy,
            "code": d.code,
        }

    return {
        "location": p.report.location,
        "config": str(o.config_path),
        "strategy": p.strategy,
        "method": p.report.quant.method,
        "ignore_key": str(p.location),
        "changed": p.changed,
        "verified": p.verified,
        "before_ignore": list(p.before),
        "after_ignore": list(p.after),
        "added": list(p.added),
        "removed": [e for e in p.before if e not in set(p.after)],
        "required_unquantized": list(p.required),
        "entries": [v.as_dict() for v in p.verdicts],
        "problems_before": [dis(d) for d in p.before_problems],
        "unfixable": [dis(d) for d in p.unfixable],
        "notes": list(p.notes),
        "check_before": {
            "verdict": o.before.verdict,
            "codes": sorted({f.code for f in o.before.findings}),
        },
        "check_after": {
            "verdict": o.after.verdict,
            "codes": sorted({f.code for f in o.after.findings}),
        },
        "targeted": [{"code": c, "status": s} for c, s in o.targeted],
        "diff": o.diff,
        "written": (
            None
            if o.written is None
            else {
                "config": str(o.written.path),
                "backup": str(o.written.backup) if o.written.backup else None,
                "links": list(o.written.links),
            }
        ),
        "exit_code": o.exit_code,
    }
