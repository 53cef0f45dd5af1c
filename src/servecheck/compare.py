"""Compare two checkpoints: architecture, quantization, and ignore lists by what they cover.

    comparison = compare_reports(ra, rb)       # from two CheckResults
    (servecheck.api.compare(a, b) runs check on both and calls this)

Two configs put side by side can look like one model when they are not (GLM-4.5, hidden 5120,
92 layers, 160 experts, beside GLM-4.5-Air), and ignore lists can look different by length
while covering the same modules. So the family of each side is identified and stated, and
ignore lists are compared by the modules they make vLLM skip (and by the resolutions they
change), not by their text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from servecheck.check_result import CheckResult
from servecheck.fix.agreement import resolves_quantized
from servecheck.fix.entries import matches
from servecheck.fix.facts import IgnoreContext, display_template
from servecheck.summary import (
    ct_groups,
    entries_text,
    human_bytes,
    kind_rows,
    schemes_text,
)

# Dimensions that tell two models apart (a family is a set of values for these).
CORE_DIMS = (
    "hidden_size",
    "num_layers",
    "num_experts",
    "intermediate_size",
    "moe_intermediate_size",
    "num_heads",
    "num_kv_heads",
    "vocab_size",
)


@dataclass(frozen=True)
class Row:
    section: str  # "model", "quantization", "schemes", "result"
    key: str
    a: str
    b: str
    note: str = ""
    same: bool | None = None  # set when the texts differ in detail only (module counts)

    @property
    def differs(self) -> bool:
        return self.a != self.b if self.same is None else not self.same

    def as_dict(self) -> dict:
        return {
            "section": self.section,
            "key": self.key,
            "a": self.a,
            "b": self.b,
            "differs": self.differs,
            "note": self.note,
        }


@dataclass(frozen=True)
class IgnoreSide:
    """One ignore list, judged against its own model's inventory."""

    entries: int
    covered: frozenset[str]  # modules vLLM consults and skips because of the list
    effect: frozenset[str]  # modules whose resolution the list changes
    unconsulted_entries: int  # entries naming only things vLLM never quantizes
    nothing_entries: int  # entries matching no name of this model at all
    by_kind: dict[str, tuple[int, int]]  # kind -> (covered, consulted modules of that kind)

    def as_dict(self) -> dict:
        return {
            "entries": self.entries,
            "covered": sorted(self.covered),
            "effect": sorted(self.effect),
            "entries_never_quantized": self.unconsulted_entries,
            "entries_matching_nothing": self.nothing_entries,
            "by_kind": {k: {"covered": c, "total": t} for k, (c, t) in self.by_kind.items()},
        }


@dataclass(frozen=True)
class IgnoreComparison:
    a: IgnoreSide
    b: IgnoreSide
    by_name: bool  # both inventories have the same module names: compared name by name
    only_a: tuple[str, ...]  # covered by A only (names, or layer-independent templates)
    only_b: tuple[str, ...]
    effect_only_a: tuple[str, ...]
    effect_only_b: tuple[str, ...]

    @property
    def same_coverage(self) -> bool:
        return not self.only_a and not self.only_b

    @property
    def same_effect(self) -> bool:
        return not self.effect_only_a and not self.effect_only_b

    def as_dict(self) -> dict:
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "compared_by": "name" if self.by_name else "layer-independent name",
            "same_coverage": self.same_coverage,
            "same_effect": self.same_effect,
            "covered_only_a": list(self.only_a),
            "covered_only_b": list(self.only_b),
            "effect_only_a": list(self.effect_only_a),
            "effect_only_b": list(self.effect_only_b),
        }


@dataclass(frozen=True)
class Comparison:
    a: CheckResult
    b: CheckResult
    relation: str  # same-model, same-family, different-family, different-architecture, ...
    statement: str
    rows: tuple[Row, ...]
    ignore: IgnoreComparison
    ignore_statement: str
    notes: tuple[str, ...] = field(default=())

    @property
    def different_models(self) -> bool:
        return self.relation not in ("same-model", "same-family")


def compare_reports(ra: CheckResult, rb: CheckResult) -> Comparison:
    relation, statement = _relation(ra, rb)
    rows = _model_rows(ra, rb) + _quant_rows(ra, rb) + _scheme_rows(ra, rb) + _result_rows(ra, rb)
    ign = compare_ignore(ra, rb)
    return Comparison(
        a=ra,
        b=rb,
        relation=relation,
        statement=statement,
        rows=tuple(rows),
        ignore=ign,
        ignore_statement=_ignore_statement(ra, rb, ign),
    )


# ---------------------------------------------------------------------------------------------
# Families


def _family(r: CheckResult) -> str | None:
    return r.family.name if r.family else None


def _dims(r: CheckResult) -> dict[str, int]:
    return {d: getattr(r.model, d) for d in CORE_DIMS}


def _dim_diffs(ra: CheckResult, rb: CheckResult) -> list[str]:
    da, db = _dims(ra), _dims(rb)
    labels = {
        "hidden_size": "hidden {} vs {}",
        "num_layers": "{} vs {} layers",
        "num_experts": "{} vs {} experts",
        "intermediate_size": "intermediate {} vs {}",
        "moe_intermediate_size": "moe_intermediate {} vs {}",
        "num_heads": "{} vs {} heads",
        "num_kv_heads": "{} vs {} KV heads",
        "vocab_size": "vocab {} vs {}",
    }
    return [labels[k].format(da[k], db[k]) for k in CORE_DIMS if da[k] != db[k]]


def _relation(ra: CheckResult, rb: CheckResult) -> tuple[str, str]:
    fa, fb = _family(ra), _family(rb)
    arch_a, arch_b = ra.model.architecture, rb.model.architecture
    diffs = _dim_diffs(ra, rb)
    dims = f" ({', '.join(diffs)})" if diffs else ""
    if arch_a != arch_b:
        return (
            "different-architecture",
            f"Different architectures: A is {arch_a}{f' ({fa})' if fa else ''}, B is "
            f"{arch_b}{f' ({fb})' if fb else ''}. They are different models; a config that "
            "works for one says nothing about the other.",
        )
    if fa and fb and fa != fb:
        return (
            "different-family",
            f"Different model families: {fa} vs {fb}. A is {fa}, B is {fb}{dims}: these are "
            "different models, not two builds of one model, so a config that works for A "
            "says nothing about whether B loads, and their ignore lists are not "
            "interchangeable.",
        )
    if diffs:
        known = f" (both match {fa})" if fa and fa == fb else ""
        return (
            "different-model",
            f"Same architecture ({arch_a}) but different dimensions{known}: {', '.join(diffs)}. "
            "These are different models; compare like with like.",
        )
    if fa:
        return "same-family", f"Same model family: both are {fa} ({arch_a}, same dimensions)."
    return (
        "same-model",
        f"Same architecture and dimensions ({arch_a}); the family is not in servecheck's table.",
    )


# ---------------------------------------------------------------------------------------------
# Rows


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return f"{v:.1f}"
    return str(v)


def _raw_key(r: CheckResult, *keys: str) -> str | None:
    raw = r.model.raw
    return next((k for k in keys if k in raw), None)


def _dtype_text(r: CheckResult) -> str:
    raw = r.checkpoint.config
    for key in ("dtype", "torch_dtype"):
        if key in raw:
            return f"{key}: {raw[key]}"
    for key in ("dtype", "torch_dtype"):
        if key in r.model.raw:
            return f"{key}: {r.model.raw[key]}"
    return "–"


def _model_rows(ra: CheckResult, rb: CheckResult) -> list[Row]:
    a, b = ra.model, rb.model

    def field(key: str, attr: str) -> Row:
        """The row `key` for the ModelConfig attribute `attr` of A and B."""
        return Row("model", key, _fmt(getattr(a, attr)), _fmt(getattr(b, attr)))

    rows = [
        Row("model", "architecture", a.architecture, b.architecture),
        Row("model", "family", _family(ra) or "unknown", _family(rb) or "unknown"),
        Row("model", "model_type", a.model_type, b.model_type),
        field("hidden_size", "hidden_size"),
        field("intermediate_size", "intermediate_size"),
    ]
    moe = a.is_moe or b.is_moe
    if moe:
        rows.append(field("moe_intermediate_size", "moe_intermediate_size"))
    rows += [
        field("num_hidden_layers", "num_layers"),
        field("num_nextn_predict_layers (MTP)", "num_nextn_predict_layers"),
        field("num_attention_heads", "num_heads"),
        field("num_key_value_heads", "num_kv_heads"),
        field("head_dim", "head_dim"),
    ]
    if moe:
        key = (
            _raw_key(ra, "n_routed_experts", "num_experts", "num_local_experts")
            or _raw_key(rb, "n_routed_experts", "num_experts", "num_local_experts")
            or "experts"
        )
        rows += [
            field(key, "num_experts"),
            field("n_shared_experts", "num_shared_experts"),
            field("num_experts_per_tok", "num_experts_per_tok"),
            field("routed_scaling_factor", "routed_scaling_factor"),
            field("first_k_dense_replace", "first_k_dense_replace"),
        ]
    rows += [
        field("use_qk_norm", "use_qk_norm"),
        field("attention_bias", "attention_bias"),
        field("vocab_size", "vocab_size"),
        field("max_position_embeddings", "max_position_embeddings"),
        field("tie_word_embeddings", "tie_word_embeddings"),
    ]
    da, db = _dtype_text(ra), _dtype_text(rb)
    note = ""
    if da != db and a.dtype == b.dtype:
        note = (
            "same dtype under two key names: transformers >= 4.56 writes `dtype`, older "
            "versions `torch_dtype`; vLLM reads either"
        )
    rows.append(Row("model", "dtype key", da, db, note))
    rows.append(Row("model", "weights", _size(ra), _size(rb)))
    return rows


def _size(r: CheckResult) -> str:
    how = "inferred" if r.checkpoint.config_only else "from headers"
    return f"{human_bytes(r.total_bytes)} ({how})"


def _groups_text(r: CheckResult) -> str:
    q = r.quant
    if q.ct is not None:
        return "; ".join(text for _, text in ct_groups(q.ct)) or "–"
    if q.fp8 is not None:
        block = q.fp8.weight_block_size
        return (f"block {block[0]}x{block[1]}" if block else "per-tensor") + (
            f", activations {q.fp8.activation_scheme}"
        )
    return "–"


def _quant_rows(ra: CheckResult, rb: CheckResult) -> list[Row]:
    qa, qb = ra.quant, rb.quant

    def fmt_(r: CheckResult) -> str:
        ct = r.quant.ct
        return _fmt(ct.format) if ct is not None else "–"

    def kv(r: CheckResult) -> str:
        ct = r.quant.ct
        if ct is None or not ct.kv_cache_scheme:
            return "–"
        s = ct.kv_cache_scheme
        return f"{s.get('type', '?')}{s.get('num_bits', '?')} {s.get('strategy', '')}".strip()

    return [
        Row("quantization", "quant method", _fmt(qa.method), _fmt(qb.method)),
        Row("quantization", "format", fmt_(ra), fmt_(rb)),
        Row("quantization", "config groups", _groups_text(ra), _groups_text(rb)),
        Row("quantization", "kv_cache_scheme", kv(ra), kv(rb)),
        Row(
            "quantization",
            "ignore list size",
            entries_text(len(qa.ignore_list)),
            entries_text(len(qb.ignore_list)),
            "compare by coverage below, not by length",
        ),
    ]


def _scheme_rows(ra: CheckResult, rb: CheckResult) -> list[Row]:
    ka = {row.kind: row for row in kind_rows(ra)}
    kb = {row.kind: row for row in kind_rows(rb)}
    kinds = list(ka) + [k for k in kb if k not in ka]
    rows = []
    for kind in kinds:
        ra_, rb_ = ka.get(kind), kb.get(kind)
        same = (
            ra_ is not None
            and rb_ is not None
            and set(ra_.schemes) == set(rb_.schemes)
            and bool(ra_.ignored) == bool(rb_.ignored)
        )
        rows.append(Row("schemes", f"schemes: {kind}", _kind_text(ra_), _kind_text(rb_), same=same))
    return rows


def _kind_text(row) -> str:
    if row is None:
        return "–"
    text = schemes_text(row.schemes)
    if len(row.schemes) == 1:
        text += f" ×{row.count}"
    if row.ignored:
        text += f" ({row.ignored} ignored)"
    return text


def _result_rows(ra: CheckResult, rb: CheckResult) -> list[Row]:
    def errs(r: CheckResult) -> str:
        codes = sorted({f.code for f in r.findings if f.severity.value == "error"})
        return ", ".join(codes) or "none"

    return [
        Row("result", "verdict", ra.verdict.upper(), rb.verdict.upper()),
        Row("result", "error findings", errs(ra), errs(rb)),
    ]


# ---------------------------------------------------------------------------------------------
# Ignore lists by coverage


def ignore_side(r: CheckResult) -> IgnoreSide:
    """What one ignore list covers in its own model, by vLLM's matching rules."""
    ctx = IgnoreContext(r)
    current = r.resolution.by_name()
    covered = frozenset(
        name
        for name, f in ctx.facts.items()
        if f.consulted and (current[name].ignored or current[name].ignored_by)
    )
    effect: set[str] = set()
    if ctx.kind is not None:
        base = ctx.baseline()
        for name, f in ctx.facts.items():
            if not f.consulted:
                continue
            a, b = current[name], base[name]
            if (a.scheme, a.error, resolves_quantized(a)) != (
                b.scheme,
                b.error,
                resolves_quantized(b),
            ):
                effect.add(name)
    unconsulted = nothing = 0
    for entry in r.quant.ignore_list:
        hits, other = matches(ctx, entry)
        if hits:
            continue
        if other:
            unconsulted += 1
        else:
            nothing += 1
    by_kind: dict[str, tuple[int, int]] = {}
    for name, f in ctx.facts.items():
        if not f.consulted:
            continue
        c, t = by_kind.get(f.module.kind, (0, 0))
        by_kind[f.module.kind] = (c + (name in covered), t + 1)
    return IgnoreSide(
        entries=len(r.quant.ignore_list),
        covered=covered,
        effect=frozenset(effect),
        unconsulted_entries=unconsulted,
        nothing_entries=nothing,
        by_kind=by_kind,
    )


def _by_template(names: frozenset[str], total: dict[str, int]) -> dict[str, str]:
    """template -> 'all' or 'k of n' (layer-independent view of a set of module names)."""
    counts: dict[str, int] = {}
    for n in names:
        t = display_template(n)
        counts[t] = counts.get(t, 0) + 1
    return {
        t: "all" if c == total.get(t) else f"{c} of {total.get(t, c)}" for t, c in counts.items()
    }


def _template_totals(r: CheckResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in r.inventory.modules:
        t = display_template(m.name)
        out[t] = out.get(t, 0) + 1
    return out


def compare_ignore(ra: CheckResult, rb: CheckResult) -> IgnoreComparison:
    a, b = ignore_side(ra), ignore_side(rb)
    names_a = {m.name for m in ra.inventory.modules}
    names_b = {m.name for m in rb.inventory.modules}
    by_name = names_a == names_b
    if by_name:
        only_a = tuple(sorted(a.covered - b.covered))
        only_b = tuple(sorted(b.covered - a.covered))
        eff_a = tuple(sorted(a.effect - b.effect))
        eff_b = tuple(sorted(b.effect - a.effect))
    else:
        ta, tb = _template_totals(ra), _template_totals(rb)
        ca, cb = _by_template(a.covered, ta), _by_template(b.covered, tb)
        ea, eb = _by_template(a.effect, ta), _by_template(b.effect, tb)
        only_a = tuple(sorted(f"{t} ({v})" for t, v in ca.items() if cb.get(t) != v))
        only_b = tuple(sorted(f"{t} ({v})" for t, v in cb.items() if ca.get(t) != v))
        eff_a = tuple(sorted(f"{t} ({v})" for t, v in ea.items() if eb.get(t) != v))
        eff_b = tuple(sorted(f"{t} ({v})" for t, v in eb.items() if ea.get(t) != v))
    return IgnoreComparison(a, b, by_name, only_a, only_b, eff_a, eff_b)


def _list(names: frozenset[str] | tuple[str, ...], limit: int = 4) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ignore_statement(ra: CheckResult, rb: CheckResult, ign: IgnoreComparison) -> str:
    a, b = ign.a, ign.b
    how = "" if ign.by_name else " (compared layer-independently: the models differ)"
    parts = []
    if ign.same_coverage:
        what = _list(a.covered) if a.covered else "no module"
        parts.append(
            f"Both ignore lists make vLLM skip the same modules{how}: {what}, although A has "
            f"{entries_text(a.entries)} and B {entries_text(b.entries)}."
        )
    else:
        parts.append(
            f"The ignore lists cover different modules{how}: only A covers "
            f"{_list(ign.only_a) or 'nothing'}; only B covers {_list(ign.only_b) or 'nothing'}."
        )
    for label, side in (("A", a), ("B", b)):
        idle = side.unconsulted_entries + side.nothing_entries
        if idle:
            parts.append(
                f"{idle} of {label}'s {entries_text(side.entries)} {_verb(idle, 'name')} "
                f"nothing vLLM quantizes ({side.unconsulted_entries} "
                f"{_verb(side.unconsulted_entries, 'name')} norms, biases, parameters or modules "
                f"built without the quantization config; {side.nothing_entries} "
                f"{_verb(side.nothing_entries, 'match')} no name of the model): "
                f"{'it changes' if idle == 1 else 'they change'} nothing."
            )
    if ign.same_effect and not a.effect and not b.effect:
        parts.append(
            "Neither list changes how vLLM quantizes any module: without either, every module "
            "would resolve the same way."
        )
    elif ign.same_effect:
        parts.append(f"Both change the same resolutions: {_list(a.effect)}.")
    else:
        parts.append(
            f"Their effect differs: only A changes {_list(ign.effect_only_a) or 'nothing'}; "
            f"only B changes {_list(ign.effect_only_b) or 'nothing'}."
        )
    return " ".join(parts)


def _verb(n: int, verb: str) -> str:
    """The verb agreeing with a count: 1 names, 2 name; 1 matches, 2 match."""
    if n != 1:
        return verb
    return verb + ("es" if verb.endswith(("s", "sh", "ch", "x")) else "s")
