"""Explaining a log: rank the candidate errors of each attempt, match them, answer.

Ranking (best first): the root exception (the final exception of the last traceback, or the
cause it was raised from), the other exceptions from the last, raise lines in traceback source,
ERROR log records, then prose; generic wrappers last. The explanation is, in this order: a
curated signature matching the root; a mined vLLM message matching the root; a curated
signature matching another candidate or a log line; a mined message matching another
exception, raise line or ERROR record (never a warning). Nothing matched: the error is unknown,
answered with its exception class, the vLLM file and function that raised it, the family its
words and file suggest, and the nearest known signatures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from servecheck.explain.attempts import split_attempts
from servecheck.explain.curated import Match, Signature, load_signatures, match_signature
from servecheck.explain.families import family_of, load_families, words_family
from servecheck.explain.mined import Mined, MinedMatch, load_mined
from servecheck.explain.reading import (
    ErrorLine,
    LogLine,
    ParsedLog,
    parse_lines,
    read_lines,
    slice_log,
    source_frame,
)

_VERSION = re.compile(
    r"(?:vLLM API server version|LLM engine \(v|vLLM version:?)\s*v?(\d+\.\d+(?:\.\d+){0,2})"
)
KIND_ORDER = {"exception": 0, "raise": 1, "error-log": 2, "prose": 3}
MAX_OTHERS = 5
MAX_MINED_TRIES = 200  # candidates tried against the mined table, in rank order
MAX_CURATED_TRIES = 80  # candidates tried against each curated signature
NEAREST = 0.3  # least word similarity of a nearest known signature worth showing


@dataclass(frozen=True)
class Nearest:
    id: str
    family: str
    title: str
    score: float


@dataclass(frozen=True)
class Explanation:
    """One failure: its root, the signature that explains it (or none), the other candidates.

    For a paste with several attempts the top-level object is the last attempt and `failures`
    holds every attempt in order (itself included)."""

    match: Match | None
    alternatives: tuple[Match, ...]
    root: ErrorLine | None
    guess: LogLine | None = None  # the line of the top-ranked candidate
    errors: tuple[ErrorLine, ...] = field(default=())
    candidates: tuple[ErrorLine, ...] = ()  # every candidate error, in rank order
    family: str | None = None
    frame: tuple[str, str] | None = None  # (file, function) that raised the root: vllm/… or a
    # library's site-packages/…
    nearest: tuple[Nearest, ...] = ()
    lines: tuple[int, int] = (0, 0)  # first and last input line of this attempt
    vllm_version: str | None = None  # the release the log names (its start-up banner)
    failures: tuple[Explanation, ...] = ()

    @property
    def matched(self) -> bool:
        return self.match is not None

    def others(self) -> list[ErrorLine]:
        """The other candidates worth listing: no wrappers, no repeat of the root's text."""
        explained = self.explained
        seen = {c.text for c in (explained, self.root) if c is not None}
        out = []
        for cand in self.candidates:
            if cand.wrapper or cand.text in seen:
                continue
            seen.add(cand.text)
            out.append(cand)
        return out

    @property
    def explained(self) -> ErrorLine | None:
        """The candidate the explanation is about (the root unless another one matched)."""
        if self.match is None:
            return self.root
        for cand in self.candidates:
            if cand.number == self.match.line:
                return cand
        return self.root


def ranked(parsed: ParsedLog) -> list[ErrorLine]:
    """Every candidate error of one attempt, best first."""
    root = parsed.root
    rest = [e for e in parsed.errors if e is not root and not e.wrapper]
    others = sorted(
        (e for e in parsed.others if not e.wrapper), key=lambda e: (KIND_ORDER[e.kind], -e.number)
    )
    wrappers = [e for e in (*parsed.errors, *parsed.others) if e.wrapper]
    return [*([root] if root else []), *reversed(rest), *others, *reversed(wrappers)]


def _mined_signature(found: MinedMatch) -> Signature:
    row = found.row
    families = load_families()
    fam = families.get(row.family) or families["engine"]
    raised = "logs this" if row.exception.startswith("log.") else "raises this"
    where = f"vllm/{row.file} ({row.function})"
    return Signature(
        id=row.id,
        title=fam.title,
        patterns=(),
        exception=row.exception,
        cause=f"{fam.cause} (vLLM {raised} in {where}.)",
        fix=fam.fix,
        finding=predicting(row.template) or fam.findings,
        vllm_source=f"vllm/{row.file}:{row.function} (releases {row.releases})",
        refs=(),
        family=row.family,
        table="mined",
        releases=row.releases,
    )


PREDICTS = 0.6  # word similarity of a finding's vLLM message to a mined message


def predicting(template: str) -> tuple[str, ...]:
    """Finding codes whose vLLM message is this mined message (by word similarity)."""
    from servecheck.findings.rules import all_rules

    codes = []
    for code, rule in all_rules().items():
        message = rule.vllm_message or ""
        if message.strip("{}") and load_mined().similarity(message, template) >= PREDICTS:
            codes.append(code)
    return tuple(codes)


def _mined_match(found: MinedMatch, where: str, cand: ErrorLine) -> Match:
    return Match(
        _mined_signature(found),
        where,
        cand.number,
        cand.raw,
        found.matched_text,
        dict(found.fields),
        found.specificity,
    )


def _usable(found: MinedMatch | None) -> bool:
    return found is not None and found.row.exception != "log.warning"


def explain_parsed(parsed: ParsedLog, signatures: Iterable[Signature]) -> Explanation:
    """Explain one attempt."""
    cands = ranked(parsed)
    top = cands[0] if cands else None
    rest = cands[1:MAX_CURATED_TRIES]
    curated = [m for m in (match_signature(s, parsed, top, rest) for s in signatures) if m]
    curated.sort(key=lambda m: m.rank, reverse=True)
    table = load_mined()
    found_version = _VERSION.search(parsed.joined)
    version = found_version.group(1) if found_version else None
    chosen: Match | None = None
    chosen_tail = ""
    if curated and curated[0].where == "root":
        chosen = curated[0]
    elif top is not None and not top.wrapper and _usable(found := table.match(top, version)):
        chosen = _mined_match(found, "root", top)  # type: ignore[arg-type]
        chosen_tail = found.tail  # type: ignore[union-attr]
    elif curated:
        chosen = curated[0]
    else:
        for cand in cands[1:MAX_MINED_TRIES]:
            if cand.kind == "prose" or cand.wrapper:
                continue
            if _usable(found := table.match(cand, version)):
                chosen = _mined_match(found, "error", cand)  # type: ignore[arg-type]
                chosen_tail = found.tail  # type: ignore[union-attr]
                break
    if top is not None and top.kind == "prose" and chosen is not None and chosen.where == "error":
        # issue text around a log: the line that matched is the root, not the first complaint
        top = next((c for c in cands if c.number == chosen.line), top)
        cands = [top, *(c for c in cands if c is not top)]
    alternatives = tuple(m for m in curated if m is not chosen)[:MAX_OTHERS]
    frame = source_frame(top) if top else None
    first = parsed.lines[0].number if parsed.lines else 0
    last = parsed.lines[-1].number if parsed.lines else 0
    guess = next((ln for ln in parsed.lines if top and ln.number == top.number), None)
    if chosen is not None:
        family = chosen.signature.family or None
        if chosen.signature.table == "mined" and chosen_tail:
            family = words_family(chosen_tail) or family  # a wrapper's inner error decides
        return Explanation(
            chosen, alternatives, top, guess, parsed.errors, tuple(cands),
            family, frame, (), (first, last), version,
        )  # fmt: skip
    family = _family_guess(top, frame) if top else None
    near = _nearest(top.text, signatures) if top else ()
    return Explanation(
        None, (), top, guess, parsed.errors, tuple(cands), family, frame, near, (first, last),
        version,
    )  # fmt: skip


def _family_guess(top: ErrorLine, frame: tuple[str, str] | None) -> str:
    """An unknown error's family: from its words, the function and file that raised it."""
    if frame is None:
        return family_of(top.text)
    path, function = frame
    return family_of(top.text, path.removeprefix("vllm/"), function)


def _nearest(text: str, signatures: Iterable[Signature], limit: int = 3) -> tuple[Nearest, ...]:
    found: list[Nearest] = []
    for row, score in load_mined().nearest(text, limit):
        found.append(Nearest(row.id, row.family, _short(row), score))
    for sig in signatures:
        words = " ".join([sig.title, *(p.pattern for p in sig.patterns)])
        score = round(load_mined().similarity(text, words), 2)
        if score >= NEAREST:
            found.append(Nearest(sig.id, sig.family, sig.title, score))
    found.sort(key=lambda n: -n.score)
    return tuple(n for n in found if n.score >= NEAREST)[:limit]


def _short(row: Mined) -> str:
    return row.template if len(row.template) <= 90 else row.template[:87] + "..."


def explain_text(text: str, signatures: Iterable[Signature] | None = None) -> Explanation:
    """Read a pasted log and explain every attempt in it; the last one is returned, with all
    of them in `failures`."""
    sigs = tuple(signatures) if signatures is not None else load_signatures()
    lines = read_lines(text)
    whole = parse_lines(lines)
    spans = split_attempts(whole)
    if len(spans) == 1:
        one = explain_parsed(whole, sigs)
        return _with_failures(one, (one,))
    failures = tuple(explain_parsed(slice_log(whole, a, b), sigs) for a, b in spans)
    return _with_failures(failures[-1], failures)


def _with_failures(last: Explanation, failures: tuple[Explanation, ...]) -> Explanation:
    from dataclasses import replace

    return replace(last, failures=failures)
