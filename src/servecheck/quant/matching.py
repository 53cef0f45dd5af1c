"""vLLM's target and ignore matching for quantization configs, keyed by vLLM version."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import regex

from servecheck.errors import InputError


class FusedShardMismatch(Exception):
    """vLLM raises ValueError: some but not all shards of a fused layer are ignored."""

    def __init__(self, layer: str, covered: list[str], uncovered: list[str], text: str):
        super().__init__(text)
        self.layer, self.covered, self.uncovered, self.text = layer, covered, uncovered, text


# A pattern that needs longer than this to match one module name is refused: names are a
# few dozen characters, so only catastrophic backtracking (`(a+)+$`) gets near it.
MATCH_SECONDS = 0.1


class _Pattern:
    """A compiled `re:` pattern whose every match is bounded in time."""

    __slots__ = ("_rx", "text")

    def __init__(self, text: str, rx: regex.Pattern):
        self.text, self._rx = text, rx

    def match(self, name: str) -> regex.Match | None:
        try:
            return self._rx.match(name, timeout=MATCH_SECONDS)
        except TimeoutError:
            raise InputError(
                f"quantization config pattern 're:{self.text[:80]}' takes over "
                f"{MATCH_SECONDS} s to match the module name {name[:80]!r}; it backtracks "
                "catastrophically (vLLM would stall on it too)"
            ) from None


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> _Pattern:
    """`pattern` (after `re:`) compiled once; InputError when vLLM cannot compile it."""
    # vLLM 0.33 quantization/utils/config_utils.py (0.10-0.11 compressed_tensors/utils.py)
    # imports the regex package as re and calls re.match(pattern, name): a pattern it cannot
    # compile makes vLLM raise while loading.
    import regex  # only when a config has `re:` patterns (the import costs ~7 ms)

    try:
        return _Pattern(pattern, regex.compile(pattern))
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        raise InputError(
            f"quantization config pattern 're:{pattern[:80]}' is not a valid regular "
            f"expression ({exc}); vLLM raises an error while loading the model"
        ) from None


def is_match(value: str, target: str, check_contains: bool = False) -> bool:
    """vLLM 0.33 quantization/utils/config_utils.py is_equal_or_regex_match.

    `re:` patterns use regex.match: anchored at the start only, not a full match, so
    `re:.*mlp.gate` also matches `...mlp.gate_up_proj`. With check_contains (class names),
    a case-insensitive substring test. Otherwise exact equality.
    """
    if target.startswith("re:"):
        return _compiled(target[3:]).match(value) is not None
    if check_contains:
        return target.lower() in value.lower()
    return target == value


class PatternSet:
    """An ignore list split for speed: exact names in a set, `re:` patterns compiled once.

    Matching order and semantics are those of is_match; the result lists every pattern that
    matches, in list order.
    """

    def __init__(self, patterns: Sequence[str]):
        self.patterns = tuple(patterns)
        self._exact = {p for p in self.patterns if not p.startswith("re:")}
        self._regex = [(p, _compiled(p[3:])) for p in self.patterns if p.startswith("re:")]

    def __contains__(self, name: str) -> bool:
        return name in self._exact

    def matches(self, name: str) -> list[str]:
        hits = [p for p, rx in self._regex if rx.match(name) is not None]
        if name in self._exact:
            hits.insert(0, name)
        return hits


def _shard_names(layer: str, proj: str, shards: Sequence[str]) -> list[str]:
    # vLLM substitutes with str.replace over the whole name, as here.
    return [layer.replace(proj, s) for s in shards]


def should_ignore(
    layer: str,
    ignore: PatternSet,
    packed: Mapping[str, Sequence[str]],
    mode: str,
) -> tuple[bool, list[str]]:
    """Whether vLLM ignores `layer`, and the patterns that decided it.

    mode "fused_first" (vLLM 0.33 compressed_tensors/utils.py should_ignore_layer via
    config_utils.find_matching_patterns): patterns matching the (fused) name win; else each
    shard of a fused layer is tested. mode "shards_unless_listed" (vLLM 0.11/0.24): a fused
    layer is tested shard by shard unless its fused name is listed verbatim.
    Raises FusedShardMismatch when shards disagree.
    """
    proj = layer.rsplit(".", 1)[-1]
    if mode == "fused_first":
        direct = ignore.matches(layer)
        if direct:
            return True, direct
        if proj not in packed:
            return False, []
        return _shards_verdict(layer, proj, packed[proj], ignore, old_message=False)
    # shards_unless_listed
    if proj in packed and layer not in ignore:
        return _shards_verdict(layer, proj, packed[proj], ignore, old_message=True)
    direct = ignore.matches(layer)
    return bool(direct), direct


def _shards_verdict(
    layer: str, proj: str, shards: Sequence[str], ignore: PatternSet, *, old_message: bool
) -> tuple[bool, list[str]]:
    names = _shard_names(layer, proj, shards)
    per_shard = [ignore.matches(n) for n in names]
    hit = [bool(m) for m in per_shard]
    if any(hit) and not all(hit):
        covered = [s for s, h in zip(shards, hit, strict=True) if h]
        uncovered = [s for s, h in zip(shards, hit, strict=True) if not h]
        if old_message:
            text = (
                f"Found a different quantization schemes for {list(shards)} in {layer}. vLLM "
                "requires all to use the same scheme."
            )
        else:
            text = (
                f"Found different quantization schemes for the shards of {layer}. vLLM requires "
                "all to use the same scheme."
            )
        raise FusedShardMismatch(layer, covered, uncovered, text)
    patterns = sorted({p for m in per_shard for p in m})
    return all(hit), patterns


@dataclass(frozen=True)
class TargetMatch:
    target: str
    via: str  # "name", "regex", "fused" or "class"


def find_target(
    layer: str,
    layer_class: str,
    targets: Sequence[str],
    packed: Mapping[str, Sequence[str]],
    order: str,
) -> TargetMatch | None:
    """vLLM's compressed-tensors find_matched_target.

    order "name,fused,class" (vLLM 0.33) or "name,class,fused" (vLLM 0.11/0.24).
    """
    for step in order.split(","):
        if step == "name":
            for t in targets:
                if is_match(layer, t):
                    return TargetMatch(t, "regex" if t.startswith("re:") else "name")
        elif step == "fused":
            hit = _match_fused(layer, targets, packed)
            if hit is not None:
                return TargetMatch(hit, "fused")
        elif step == "class":
            for t in targets:
                if is_match(layer_class, t, check_contains=True):
                    return TargetMatch(t, "class")
    return None


def _match_fused(
    layer: str, targets: Sequence[str], packed: Mapping[str, Sequence[str]]
) -> str | None:
    """vLLM compressed_tensors/utils.py _match_fused_layer: all shards must match some target;
    returns the first shard's target."""
    fused = next((k for k in packed if layer.endswith(k)), None)
    if fused is None:
        return None
    found: list[str | None] = []
    for name in (layer.replace(fused, s) for s in packed[fused]):
        found.append(next((t for t in targets if is_match(name, t)), None))
    return found[0] if all(found) else None


def fp8_is_skipped(layer: str, ignored: Sequence[str], packed: Mapping[str, Sequence[str]]) -> bool:
    """vLLM 0.33 quantization/utils/quant_utils.py is_layer_skipped, match_mode="exact".

    Raises FusedShardMismatch with vLLM's fp8 wording when shards disagree.
    """
    proj = layer.rsplit(".", 1)[-1]
    listed = set(ignored)
    if proj in packed and layer in listed:
        return True
    if proj in packed:
        names = _shard_names(layer, proj, packed[proj])
        hit = [n in listed for n in names]
        if any(hit) and not all(hit):
            shards = packed[proj]
            text = (
                f"Detected some but not all shards of {layer} are quantized. All shards of fused "
                "layers to have the same precision."
            )
            raise FusedShardMismatch(
                layer,
                [s for s, h in zip(shards, hit, strict=True) if h],
                [s for s, h in zip(shards, hit, strict=True) if not h],
                text,
            )
        return all(hit)
    if "experts" in layer:
        return any(layer in entry for entry in ignored if "experts" in entry)
    return layer in listed


def unused_patterns(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """Patterns that match none of `names` (exact or `re:` semantics)."""
    names = list(names)
    exact = set(names)
    unused = []
    for p in patterns:
        if p.startswith("re:"):
            rx = _compiled(p[3:])
            if not any(rx.match(n) for n in names):
                unused.append(p)
        elif p not in exact:
            unused.append(p)
    return unused
