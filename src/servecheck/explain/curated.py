"""The curated signature catalogue (knowledge/signatures.toml) and matching one signature.

Signatures are regexes over error text written by hand for failures vLLM's own wording does not
explain well (toolchain, kernels, CUDA, NCCL, the Hub) or whose cause needs more than the
message. A signature matches where one of its patterns matches the root error, another
candidate error, or (for signatures that allow it) any log line, and all its context patterns
occur in the log. Specificity: literal characters the pattern requires, plus 40 per context
pattern, plus the signature's priority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servecheck.explain.reading import ErrorLine, ParsedLog

try:  # Python 3.11+
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

SIGNATURES_FILE = "signatures.toml"
CONTEXT_WEIGHT = 40

# Where a signature matched, best first.
WHERE_RANK = {"root": 2, "error": 1, "log": 0}

_SPACES = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One known vLLM failure (a row of knowledge/signatures.toml)."""

    id: str
    title: str
    patterns: tuple[re.Pattern[str], ...]
    exception: str
    cause: str
    fix: str
    finding: tuple[str, ...]
    vllm_source: str
    refs: tuple[str, ...]
    catalog: tuple[str, ...] = ()
    context: tuple[re.Pattern[str], ...] = ()
    log_lines: bool = False
    detail: str | None = None
    facts: str | None = None  # GPU-table facts for `detail` (servecheck.hardware.gpu_facts)
    priority: int = 0
    # Per pattern: literal characters every match must contain (see `literal_length`).
    literal: tuple[int, ...] = ()
    family: str = ""
    table: str = "curated"  # curated (signatures.toml) or mined (vllm_messages.json)
    releases: str = ""  # mined: the vLLM releases that have the message

    def specificity(self, pattern_index: int) -> int:
        return self.literal[pattern_index] + CONTEXT_WEIGHT * len(self.context) + self.priority

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "exception": self.exception,
            "cause": self.cause,
            "fix": self.fix,
            "finding": list(self.finding),
            "vllm_source": self.vllm_source,
            "refs": list(self.refs),
            "catalog": list(self.catalog),
            "family": self.family,
            "table": self.table,
            **({"releases": self.releases} if self.releases else {}),
        }


def literal_length(pattern: str) -> int:
    """Characters a match of `pattern` must contain literally (shortest branch, no classes)."""
    return _min_literal(_sre_parse.parse(pattern))


def _min_literal(items: Iterable[Any]) -> int:
    total = 0
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            total += 1
        elif name == "SUBPATTERN":
            total += _min_literal(arg[-1])
        elif name == "BRANCH":
            total += min(_min_literal(branch) for branch in arg[1])
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            total += min(low, 1) * _min_literal(sub)
        elif name == "ATOMIC_GROUP":
            total += _min_literal(arg)
    return total


def _signature(row: Mapping[str, Any]) -> Signature:
    sources = tuple(row["patterns"])
    finding = row.get("finding", ())
    if isinstance(finding, str):
        finding = (finding,) if finding else ()
    return Signature(
        id=row["id"],
        title=row["title"],
        patterns=tuple(re.compile(p) for p in sources),
        exception=row.get("exception", ""),
        cause=_SPACES.sub(" ", row["cause"]).strip(),
        fix=_SPACES.sub(" ", row["fix"]).strip(),
        finding=tuple(finding),
        vllm_source=row.get("vllm_source", ""),
        refs=tuple(row.get("refs", ())),
        catalog=tuple(row.get("catalog", ())),
        context=tuple(re.compile(p) for p in row.get("context", ())),
        log_lines=bool(row.get("log_lines", False)),
        detail=row.get("detail"),
        facts=row.get("facts"),
        priority=int(row.get("priority", 0)),
        literal=tuple(literal_length(p) for p in sources),
        family=row.get("family") or _family_guess(row),
    )


def _family_guess(row: Mapping[str, Any]) -> str:
    """A curated row without `family`: from its title and cause, and the vLLM file it cites."""
    from servecheck.explain.families import family_of

    source = str(row.get("vllm_source", ""))
    path = source.split(":", 1)[0].split(" ", 1)[0] if source else ""
    return family_of(f"{row['title']} {row['cause']}", path)


@lru_cache(maxsize=1)
def load_signatures() -> tuple[Signature, ...]:
    """The catalogue, parsed and compiled once per process."""
    from servecheck.knowledge import load_toml

    rows = load_toml(SIGNATURES_FILE)["signature"]
    signatures = tuple(_signature(row) for row in rows)
    ids = [s.id for s in signatures]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate signature ids in {SIGNATURES_FILE}: {dupes}")
    return signatures


# --------------------------------------------------------------------------------------------
# Matching one signature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    signature: Signature
    where: str  # "root", "error" or "log"
    line: int
    raw: str
    matched_text: str
    fields: Mapping[str, str]
    specificity: int

    @property
    def rank(self) -> tuple[int, int, int]:
        return (WHERE_RANK[self.where], self.specificity, self.line)

    def detail(self) -> str | None:
        template = self.signature.detail
        if not template:
            return None
        fields = dict(self.fields)
        if self.signature.facts:
            from servecheck.hardware.gpu_facts import explain_facts

            fields.update(explain_facts(self.signature.facts, fields))
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            return None


def _search(sig: Signature, where: str, number: int, raw: str, text: str) -> Match | None:
    best: Match | None = None
    for idx, pattern in enumerate(sig.patterns):
        m = pattern.search(text)
        if m is None:
            continue
        fields = {k: v for k, v in m.groupdict().items() if v is not None}
        candidate = Match(sig, where, number, raw, m.group(0), fields, sig.specificity(idx))
        if best is None or candidate.specificity > best.specificity:
            best = candidate
    return best


def match_signature(
    sig: Signature, parsed: ParsedLog, root: ErrorLine | None, others: Sequence[ErrorLine]
) -> Match | None:
    """Where `sig` matches this log: at the root, at another candidate error (in rank order),
    or at a log line; None when it does not."""
    context = [c.search(parsed.joined) for c in sig.context]
    if any(m is None for m in context):
        return None
    found = _locate(sig, parsed, root, others)
    # Named groups of context patterns (the GPU's architecture in a warning) add to the fields.
    extra = {k: v for m in context if m for k, v in m.groupdict().items() if v is not None}
    if found is None or not extra:
        return found
    return replace(found, fields={**extra, **found.fields})


def _locate(
    sig: Signature, parsed: ParsedLog, root: ErrorLine | None, others: Sequence[ErrorLine]
) -> Match | None:
    if root is not None:
        found = _search(sig, "root", root.number, root.raw, root.text)
        if found:
            return found
    for error in others:
        found = _search(sig, "error", error.number, error.raw, error.text)
        if found:
            return found
    if sig.log_lines:
        return _search_lines(sig, parsed)
    return None


def _search_lines(sig: Signature, parsed: ParsedLog) -> Match | None:
    """The last log line one of the signature's patterns matches. Each pattern scans the
    joined text once (the lines, whitespace collapsed, joined by newlines); the line of its
    last match is then searched alone."""
    joined = parsed.joined
    last = -1
    for pattern in sig.patterns:
        end = None
        for end in pattern.finditer(joined):  # noqa: B007 - the last match is wanted
            pass
        if end is not None:
            last = max(last, joined.count("\n", 0, end.start()))
    if last < 0:
        return None
    line = parsed.lines[last]
    found = _search(sig, "log", line.number, line.raw, _SPACES.sub(" ", line.text))
    if found is not None:
        return found
    for line in reversed(parsed.lines[:last]):  # a match that ran across a line break
        if line.text.strip():
            found = _search(sig, "log", line.number, line.raw, _SPACES.sub(" ", line.text))
            if found:
                return found
    return None
