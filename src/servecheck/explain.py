"""Explain a vLLM log or traceback: find the root error and match it to a known signature.

The signatures are data (knowledge/signatures.toml), built from vLLM's own raise sites and from
the failure catalogue. This module only parses logs and matches; it never imports vLLM or torch.

Parsing: each line is stripped of the prefixes vLLM and its launchers add (ANSI colours,
`(EngineCore_DP0 pid=1)`, `[rank0]:`, `ERROR 10-04 12:00:00 [core.py:708]`), then classified
(traceback frame, source line, exception line, chain marker). An exception line and the lines
that continue its message form one error. Generic wrappers (engine-core start-up failure,
"Worker failed with error '...'") are not root errors; a worker wrapper's quoted message is.
The root error is the last non-wrapper error, or, when it was raised `from` an earlier one,
that earlier cause.

Matching: a signature matches where one of its patterns matches the root error, another error,
or (for signatures that allow it) any log line, and all its context patterns occur in the log.
The best match is the one closest to the root, then the most specific (literal characters the
pattern requires, plus 40 per context pattern, plus the signature's priority).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

try:  # Python 3.11+
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

SIGNATURES_FILE = "signatures.toml"
CONTEXT_WEIGHT = 40
MAX_CONTINUATION = 12

# Where a signature matched, best first.
WHERE_RANK = {"root": 2, "error": 1, "log": 0}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\s+")
_PROCESS = re.compile(r"^\((?=[^()]*\bpid=\d)[^()]*\)\s?")
_RANK = re.compile(r"^\[rank\d+\]:\s?")
_LEVEL = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\s+\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?"
    r"\s+(?P<origin>\[?[\w.<>-]+:\d+\])?\s?"
)
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+, in ')
_TRACEBACK = re.compile(r"^\s*Traceback \(most recent call last\):")
_CAUSE = re.compile(r"^\s*The above exception was the direct cause of the following exception")
_DURING = re.compile(r"^\s*During handling of the above exception, another exception occurred")
_MARKERS = re.compile(r"^\s*[\^~ ]+$")
_EXCEPTION = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*(?:(?:[A-Z]\w*)?(?:Error|Exception|Exit|Interrupt|Warning|Fault)"
    r"|KeyError|AssertionError|StopIteration))"
    r"(?:\((?P<paren>.*)\))?(?::\s*(?P<msg>.*))?$"
)
_WHAT = re.compile(r"^\s*what\(\):\s+(?P<msg>.+)$")
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w+Warning:")
_GLOG = re.compile(r"^\[?[WIEF]\d{4} \d\d:\d\d:\d\d")
_PROCESS_LINE = re.compile(r"^Process [\w-]+:$")
_INNER = re.compile(
    r"Worker failed with error '(?P<inner>.*)', please check the\s+stack trace above"
)
_WRAPPERS = re.compile(
    "|".join(
        (
            r"Engine core initialization failed",
            r"Frontend process failed during engine core initialization",
            r"WorkerProc initialization failed due to an exception",
            r"Worker failed with error .*please check the\s+stack trace above",
            r"Worker failed with KV connector output",
            r"EngineCore failed to start",
            r"Engine process failed to start",
            r"^(?:[\w.]+\.)?EngineDeadError",
            r"^(?:[\w.]+\.)?EngineGenerateError",
            r"^(?:[\w.]+\.)?(?:SystemExit|KeyboardInterrupt|CancelledError|GeneratorExit)\b",
            r"^(?:[\w.]+\.)?RayTaskError\b",
            r"^(?:[\w.]+\.)?RayActorError\b",
            r"died unexpectedly",
        )
    )
)
# For unmatched logs: a line that mentions an error, and generic lines to pass over.
_ERRORISH = re.compile(r"error|exception|assert|fatal|failed|traceback", re.IGNORECASE)
_GENERIC = re.compile(
    "|".join(
        (
            _WRAPPERS.pattern,
            r"Traceback \(most recent call last\)",
            r"See root cause above",
            r"please check the stack trace",
            r"WorkerProc failed to start",
            r"WorkerProc hit an exception",
            r"EngineCore encountered a fatal error",
            r"^(?:ERROR|error):?\s*$",
        )
    )
)
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
    )


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
# Parsing a log
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    number: int  # 1-based line number in the input
    raw: str  # the line as given (without the newline)
    text: str  # prefixes stripped, right-stripped
    origin: str  # process prefix + logger origin: lines of one log record share it


@dataclass(frozen=True)
class ErrorLine:
    """An exception (or an error quoted by a wrapper) found in the log."""

    number: int
    raw: str
    exception: str
    text: str  # "Type: message" plus continuation lines, whitespace collapsed
    wrapper: bool = False
    caused_by_previous: bool = False  # preceded by "The above exception was the direct cause"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.number, "exception": self.exception, "text": self.text}


@dataclass(frozen=True)
class ParsedLog:
    lines: tuple[LogLine, ...]
    errors: tuple[ErrorLine, ...]
    root: ErrorLine | None
    joined: str  # all stripped lines, for context patterns


def clean_line(raw: str) -> tuple[str, str]:
    """(text without launcher/logger prefixes, origin key of the log record)."""
    text = _ANSI.sub("", raw).rstrip("\r\n").rstrip()
    origin = []
    for _ in range(4):  # prefixes can nest: timestamp, process, rank, level
        before = text
        text = _TIMESTAMP.sub("", text)
        m = _PROCESS.match(text)
        if m:
            origin.append(m.group(0).strip())
            text = text[m.end() :]
        m = _RANK.match(text)
        if m:
            origin.append(m.group(0).strip())
            text = text[m.end() :]
        m = _LEVEL.match(text)
        if m:
            origin.append(m.group("origin") or m.group("level"))
            text = text[m.end() :]
        if text == before:
            break
    return text, " ".join(origin)


def _exception(text: str) -> tuple[str, str] | None:
    """(type, message) when the stripped line is an exception line."""
    stripped = text.strip()
    m = _EXCEPTION.match(stripped)
    if m:
        message = m.group("msg")
        if message is None:
            message = m.group("paren") or ""
        elif m.group("paren"):
            message = f"({m.group('paren')}) {message}"
        return m.group("type"), message
    m = _WHAT.match(stripped)
    if m:
        return "c10::Error", m.group("msg")
    return None


def _stops_message(line: LogLine, origin: str) -> bool:
    text = line.text.strip()
    return (
        not text
        or line.origin != origin
        or _FRAME.match(text) is not None
        or _TRACEBACK.match(text) is not None
        or _CAUSE.match(text) is not None
        or _DURING.match(text) is not None
        or _PY_WARNING.match(text) is not None
        or _GLOG.match(text) is not None
        or _PROCESS_LINE.match(text) is not None
        or _exception(text) is not None
    )


def parse_log(text: str) -> ParsedLog:
    """Split a log into lines and errors, and find the root error."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        cleaned, origin = clean_line(raw)
        lines.append(LogLine(number, raw, cleaned, origin))

    errors: list[ErrorLine] = []
    after_frame = False
    frame_indent = 0
    cause_pending = False
    for i, line in enumerate(lines):
        body = line.text
        stripped = body.strip()
        indent = len(body) - len(body.lstrip())
        if _FRAME.match(body):
            after_frame, frame_indent = True, indent
            continue
        if after_frame and (indent > frame_indent or _MARKERS.match(body)):
            continue  # the source line under a frame, or its ^^^^ markers
        after_frame = False
        if _CAUSE.match(body):
            cause_pending = True
            continue
        if _DURING.match(body) or _TRACEBACK.match(body):
            continue
        if _PY_WARNING.match(stripped):
            continue
        found = _exception(stripped)
        if found is None:
            continue
        exc_type, message = found
        parts = [f"{exc_type}: {message}" if message else exc_type]
        for follower in lines[i + 1 : i + 1 + MAX_CONTINUATION]:
            if _stops_message(follower, line.origin):
                break
            parts.append(follower.text.strip())
        full = _SPACES.sub(" ", " ".join(parts)).strip()
        head = f"{exc_type}: {message}"
        wrapper = _WRAPPERS.search(head) is not None
        errors.append(
            ErrorLine(
                line.number, line.raw, exc_type, full, wrapper, caused_by_previous=cause_pending
            )
        )
        cause_pending = False
        inner = _INNER.search(full)
        if inner:
            quoted = inner.group("inner")
            inner_type = _exception(quoted)
            errors.append(
                ErrorLine(
                    line.number,
                    line.raw,
                    inner_type[0] if inner_type else "(worker error)",
                    _SPACES.sub(" ", quoted).strip(),
                )
            )

    root = _root(errors)
    joined = "\n".join(_SPACES.sub(" ", ln.text) for ln in lines)
    return ParsedLog(tuple(lines), tuple(errors), root, joined)


def _root(errors: list[ErrorLine]) -> ErrorLine | None:
    candidates = [e for e in errors if not e.wrapper]
    if not candidates:
        return None
    index = len(candidates) - 1
    # `raise X from cause`: Python prints the cause first; the cause is the root.
    while index > 0 and candidates[index].caused_by_previous:
        previous = candidates[index - 1]
        if previous.number >= candidates[index].number:
            break
        index -= 1
    return candidates[index]


# --------------------------------------------------------------------------------------------
# Matching
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


@dataclass(frozen=True)
class Explanation:
    match: Match | None
    alternatives: tuple[Match, ...]
    root: ErrorLine | None
    # For an unmatched log: the line that looks most like the root error.
    guess: LogLine | None = None
    errors: tuple[ErrorLine, ...] = field(default=())

    @property
    def matched(self) -> bool:
        return self.match is not None


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


def match_signature(sig: Signature, parsed: ParsedLog) -> Match | None:
    """Where `sig` matches this log, closest to the root error; None when it does not."""
    context = [c.search(parsed.joined) for c in sig.context]
    if any(m is None for m in context):
        return None
    found = _locate(sig, parsed)
    # Named groups of context patterns (the GPU's architecture in a warning) add to the fields.
    extra = {k: v for m in context if m for k, v in m.groupdict().items() if v is not None}
    if found is None or not extra:
        return found
    return replace(found, fields={**extra, **found.fields})


def _locate(sig: Signature, parsed: ParsedLog) -> Match | None:
    root = parsed.root
    if root is not None:
        found = _search(sig, "root", root.number, root.raw, root.text)
        if found:
            return found
    for error in reversed(parsed.errors):
        if error is root:
            continue
        found = _search(sig, "error", error.number, error.raw, error.text)
        if found:
            return found
    if sig.log_lines:
        for line in reversed(parsed.lines):
            if line.text.strip():
                found = _search(sig, "log", line.number, line.raw, _SPACES.sub(" ", line.text))
                if found:
                    return found
    return None


def explain_text(text: str, signatures: Iterable[Signature] | None = None) -> Explanation:
    """Parse a log and match it against the catalogue."""
    parsed = parse_log(text)
    sigs = tuple(signatures) if signatures is not None else load_signatures()
    matches = [m for m in (match_signature(s, parsed) for s in sigs) if m is not None]
    matches.sort(key=lambda m: m.rank, reverse=True)
    if matches:
        return Explanation(matches[0], tuple(matches[1:6]), parsed.root, errors=parsed.errors)
    return Explanation(None, (), parsed.root, guess=_guess(parsed), errors=parsed.errors)


def _guess(parsed: ParsedLog) -> LogLine | None:
    """The line that looks most like the root error when no signature matched."""
    if parsed.root is not None:
        return parsed.lines[parsed.root.number - 1]
    for line in reversed(parsed.lines):
        text = line.text.strip()
        if not text or _FRAME.match(text) or _PY_WARNING.match(text):
            continue
        if _ERRORISH.search(text) and not _GENERIC.search(text):
            return line
    return None
