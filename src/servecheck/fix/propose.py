"""Proposals: a new ignore list per strategy, judged entry by entry and verified."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from servecheck.check_result import CheckResult
from servecheck.findings.registry import Finding
from servecheck.fix.agreement import Disagreement, disagreements, resolves_quantized
from servecheck.fix.derive import derive_entries, required
from servecheck.fix.entries import EntryVerdict, evaluate_entries, matches, names_text
from servecheck.fix.facts import (
    FIXABLE_CODES,
    FLOAT,
    STRATEGIES,
    STRATEGY_ALIASES,
    FixError,
    IgnoreContext,
    IgnoreLocation,
    ignore_location,
    resolve_config,
    with_ignore,
)
from servecheck.model.inventory import (
    EMBEDDING,
    NORM,
    ROUTER,
)
from servecheck.quant.resolve import ResolutionResult

# The entries conventionally left unquantized (adapted to the model's names), and the patterns
# the explicit strategy adds for the norms and the router's correction bias.
CONVENTIONAL = ("lm_head", "embed_tokens", "model.norm")
NORM_PATTERNS = (
    r"re:.*\.input_layernorm$",
    r"re:.*\.post_attention_layernorm$",
    r"re:.*\.self_attn\..*_norm$",
    r"re:.*\.mlp\.gate\.e_score_correction_bias$",
)


# Proposals


@dataclass(frozen=True)
class FixProposal:
    """A proposed ignore list, how each entry was judged, and whether it verifies."""

    report: CheckResult
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
    after_report: CheckResult | None = None
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


def propose(
    report: CheckResult,
    strategy: str = "checkpoint",
    *,
    recheck: Callable[[CheckResult, dict], CheckResult],
) -> FixProposal:
    """Propose a new ignore list for `report`'s checkpoint; raises FixError when impossible.

    `recheck(report, config)` is the full check of the same checkpoint with another config
    (in memory); the library surface passes it (servecheck.api.propose_fix)."""
    strategy = STRATEGY_ALIASES.get(strategy, strategy)
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
            "--strategy conventional / explicit"
        )
    before = tuple(report.quant.ignore_list)
    before_problems = tuple(disagreements(ctx, report.resolution))
    req_names = () if ctx.config_only else tuple(f.name for f in required(ctx))
    if not ctx.config_only:
        base = ctx.baseline()
        quantizable = [
            f for f in ctx.facts.values() if f.consulted and resolves_quantized(base[f.name])
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
    notes += _same_result_notes(ctx, strategy, verdicts)
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


def _same_result_notes(
    ctx: IgnoreContext, strategy: str, verdicts: Sequence[EntryVerdict]
) -> list[str]:
    """Why this strategy gives the same result as a simpler one, when it does."""
    notes = []
    if strategy == "explicit":
        more = [v for v in verdicts if v.source.startswith((_PATTERN_SOURCE, _PER_LAYER_SOURCE))]
        if more and not any(v.accepted for v in more):
            notes.append(
                "same list as --strategy conventional: every norm pattern and per-layer entry "
                f"explicit adds ({len(more)}) was refused, because vLLM never quantizes those "
                "modules (norms, biases, router gates) in this model"
            )
    added = [v for v in verdicts if v.accepted and v.source.startswith(_ADDED_SOURCES)]
    no_effect = all(v.code == "no-effect" for v in added)
    if strategy != "checkpoint" and not ctx.config_only and no_effect:
        notes.append(
            f"same result as --strategy checkpoint: the {len(added)} entries this strategy "
            "adds name modules vLLM does not quantize here (norms, biases, router gates, "
            "the embedding), so they change nothing in how it loads; the entries that "
            "matter come from the headers"
        )
    return notes


def _drop_redundant_derived(ctx: IgnoreContext, verdicts: list[EntryVerdict]) -> list[EntryVerdict]:
    """Header-derived entries whose every match an accepted earlier entry already covers."""
    covered: set[tuple[str, str]] = set()
    out = []
    for v in verdicts:
        if not v.accepted:
            out.append(v)
            continue
        hits = {(mod, name) for mod, _, name in matches(ctx, v.entry)[0]}
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
        reason = "dropped: the derived entries cover " + names_text(v.covers)
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


_CONVENTIONAL_SOURCE = "conventional"
_PATTERN_SOURCE = "norm pattern"
_PER_LAYER_SOURCE = "per layer"
_ADDED_SOURCES = (_CONVENTIONAL_SOURCE, _PATTERN_SOURCE, _PER_LAYER_SOURCE)


def _option_entries(ctx: IgnoreContext, strategy: str) -> list[tuple[str, str]]:
    """The conventional entries (both strategies) and, for `explicit`, the norm patterns and
    every norm, bias and router gate of this model's real layers by name."""
    inv = ctx.report.inventory
    embed = next((m.name for m in inv.modules if m.kind == EMBEDDING), None)
    final_norm = next((m.name for m in inv.modules if m.kind == NORM and m.layer is None), None)
    out: list[tuple[str, str]] = []
    for entry in CONVENTIONAL:
        if entry == "embed_tokens" and embed and embed != entry:
            out.append((embed, f"{_CONVENTIONAL_SOURCE} (the embedding)"))
        elif entry == "model.norm" and final_norm and final_norm != entry:
            out.append((final_norm, f"{_CONVENTIONAL_SOURCE} (the final norm)"))
        else:
            out.append((entry, _CONVENTIONAL_SOURCE))
    if strategy != "explicit":
        return out
    out += [(p, _PATTERN_SOURCE) for p in NORM_PATTERNS]
    # The "working" model's per-layer entries, generated for this model's real layers.
    layers = ctx.report.model.num_layers + ctx.report.model.num_nextn_predict_layers
    src = f"{_PER_LAYER_SOURCE} ({layers} layers)"
    for m in inv.modules:
        if m.kind == NORM and m.layer is not None:
            out.append((m.name, src))
        elif m.kind == ROUTER:
            out.append((m.name, src))
            out += [(f"{m.name}.{p.suffix}", src) for p in m.params]
        if m.bias and m.kind != ROUTER:
            out += [(f"{s.ckpt_name}.bias", src) for s in m.shards]
    return out
