"""Reading a pasted log: lines without launcher prefixes, and every candidate error in it.

Each line is stripped of what launchers and loggers add (ANSI colours, carriage returns, docker
and k8s timestamps, docker-compose service columns, syslog headers, `(EngineCore_DP0 pid=1)` /
`(RayWorkerWrapper pid=1, ip=…)` process prefixes, `[rank0]:`, `INFO 12-01 10:00:00
[file.py:12]` record headers, markdown quotes and fences); a JSON log record becomes its
message, one line per line of it. Then every candidate error is collected, by kind:

    exception  an exception line (with the lines continuing its message) — traceback or not
    raise      a `raise X("…")` / `assert …, "…"` source line shown under a traceback frame
    error-log  an ERROR / CRITICAL log record, a glog E line, `ERROR: …`
    prose      any other line that speaks of an error (issue text, a warning)

An exception's traceback frames are kept, so the vLLM file and function that raised it are
known. Generic wrappers (engine-core start-up failure, "Worker failed with error '...'") are
marked; a worker wrapper's quoted message is an exception of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_CONTINUATION = 12
MAX_PROSE = 120
MAX_TEXT = 2000  # characters of an error's text that are matched (a message's start says it)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|#033\[[0-9;]*[A-Za-z]")
_TIMESTAMP = re.compile(
    r"^\[?\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d| ?UTC)?\]?\s+"
    r"|^\[\d\d:\d\d:\d\d(?:[.,]\d+)?\]\s+"
)
_SYSLOG = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [\w.\-/@]+(?:\[\d+\])?: ")
_COMPOSE = re.compile(r"^[\w.-]+(?:[-_]\d+)?\s+\|\s?")
_PROCESS = re.compile(r"^\((?=[^()]*\b(?:pid|rank)=\d)(?P<name>[^()]*)\)\s?")
_RAY_DAEMON = re.compile(r"^\((?:raylet|gcs_server|autoscaler|monitor)[^()]*\)\s?")
_RANK = re.compile(r"^\[rank\d+\]:\s?|^\[\d+,\d+\]<std(?:out|err)>:\s?")
_LEVEL = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s+(?:\d{4}-)?\d\d-\d\d[ T]"
    r"\d\d:\d\d:\d\d(?:[.,]\d+)?\s+(?P<origin>\[?[\w.<>-]+:\d+\]?)?\s?"
)
_PLAIN_LEVEL = re.compile(
    r"^(?:\[(?P<l1>ERROR|CRITICAL|FATAL|WARNING)\]|(?P<l2>ERROR|CRITICAL|FATAL):(?:[\w.]+:)?)\s*"
)
_GLOG = re.compile(r"^\[?(?P<level>[WIEF])\d{4} \d\d:\d\d:\d\d(?:\.\d+)?\s+\d+\s+[\w.]+:\d+\]\s?")
_LEVELS = r"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
# Other record headers: `| ERROR | stderr |` (FastChat), `stdout/ERROR` (process supervisors),
# `12:00:01-123 ERROR` (rich), Ray's C++ `[2025-04-02 15:02:00,117 E 1 1]` with `file.cc:12:`.
_OTHER_LEVEL = re.compile(
    rf"^\|\s*(?P<a>{_LEVELS})\s*\|\s*[\w.-]+\s*\|\s?"
    rf"|^[\w.-]+/(?P<b>{_LEVELS})\s+"
    rf"|^\d\d:\d\d:\d\d(?:[-.,]\d+)?\s+(?P<c>{_LEVELS})\s+"
    r"|^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ (?P<d>[DIWEF]) \d+ \d+\]\s*"
)
_SOURCE_POS = re.compile(r"^[\w.-]+\.(?:cc|cpp|cu|h|hpp|py):\d+:\s")
_MARKDOWN = re.compile(r"^(?:[-*+]\s+)?(?:`{1,3}|\*\*)(?=\S)|(?<=\S)(?:`{1,3}|\*\*)\s*$")
_QUOTE = re.compile(r"^>\s?")
_FENCE = re.compile(r"^\s*(?:```|~~~)\w*\s*$")

FRAME = re.compile(r'^\s*File "(?P<path>[^"]*)",?(?: line \d+)?(?:, in (?P<func>\S+))?')
TRACEBACK = re.compile(r"^\s*Traceback \(most recent call last\):")
CAUSE = re.compile(r"^\s*The above exception was the direct cause of the following exception")
DURING = re.compile(r"^\s*During handling of the above exception, another exception occurred")
_MARKERS = re.compile(r"^\s*[\^~ ]+$")
_EXCEPTION = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*(?:(?:[A-Z]\w*)?(?:Error|Exception|Exit|Interrupt|Warning|Fault)"
    r"|KeyError|AssertionError|StopIteration)"
    r"|(?:[a-z_]\w*\.)+(?:errors|exceptions|exc)\.[A-Z]\w*)"
    r"(?:\((?P<paren>.*)\))?(?::\s*(?P<msg>.*))?$"
)
# After a traceback's frames, the first line at the frames' indent is the exception, whatever
# its class is called (triton's OutOfResources).
_AFTER_FRAMES = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s*(?P<msg>.*))?$")
_WHAT = re.compile(r"^\s*what\(\):\s+(?P<msg>.+)$")
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w+Warning:")
_PROCESS_LINE = re.compile(r"^Process [\w-]+:$")
_RAISE = re.compile(r"^\s*(?:raise\s+(?P<type>[\w.]+)\s*\(|assert\b)")
_STRING = re.compile(r"""[rbfRBF]{0,2}(?P<q>"|')(?P<s>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_FIELD = re.compile(r"\{[^{}]*\}")
_INNER = re.compile(
    r"Worker failed with error '(?P<inner>.*)', please check the\s+stack trace above"
)
WRAPPERS = re.compile(
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
_ERRORISH = re.compile(
    r"error|exception|assert|fatal|failed|traceback|not supported|unsupported|out of memory"
    r"|\bOOM\b|cannot|can't|unable to|insufficient|no kernel|larger than|exceeds?\b"
    r"|too (?:small|large)|must be|is not (?:available|defined|divisible)|only supported"
    r"|requires?\b|not found"
    r"|killed|restricted|报错|错误|失败",
    re.IGNORECASE,
)
GENERIC = re.compile(
    "|".join(
        (
            WRAPPERS.pattern,
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
SPACES = re.compile(r"\s+")
_TRAILING_TRACEBACK = re.compile(r",?\s*Traceback \(most recent(?: call last\):?)?$")


@dataclass(frozen=True)
class LogLine:
    number: int  # 1-based line number in the input
    raw: str  # the line as given (without the newline)
    text: str  # prefixes stripped, right-stripped
    origin: str  # process prefix + logger origin: lines of one log record share it
    level: str = ""  # ERROR, WARNING, ... when the line carries a log-record level
    process: str = ""  # the process name of a `(Name pid=…)` prefix, pid left out


@dataclass(frozen=True)
class ErrorLine:
    """A candidate error found in the log."""

    number: int
    raw: str
    exception: str
    text: str  # "Type: message" plus continuation lines, whitespace collapsed
    wrapper: bool = False
    caused_by_previous: bool = False  # preceded by "The above exception was the direct cause"
    kind: str = "exception"  # exception, raise, error-log, prose
    frames: tuple[tuple[str, str], ...] = ()  # (path, function) of its traceback, outermost first
    chain: int = -1  # exceptions printed as one chain of tracebacks share this
    process: str = ""
    probes: tuple[str, ...] = ()  # literal parts of a raise line's message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.number, "exception": self.exception, "text": self.text}


@dataclass(frozen=True)
class ParsedLog:
    lines: tuple[LogLine, ...]
    errors: tuple[ErrorLine, ...]  # exception candidates (wrappers included), in order
    root: ErrorLine | None  # the root exception
    joined: str  # all stripped lines, for context patterns
    others: tuple[ErrorLine, ...] = field(default=())  # raise, error-log and prose candidates
    chain_starts: tuple[
        int, ...
    ] = ()  # per chain: index in `lines` where its first traceback starts


def slice_log(parsed: ParsedLog, start: int, end: int) -> ParsedLog:
    """The part of a parsed log made of lines[start:end] (one attempt), without reading again."""
    lines = parsed.lines[start:end]
    if not lines:
        return ParsedLog((), (), None, "")
    first, last = lines[0].number, lines[-1].number
    errors = tuple(e for e in parsed.errors if first <= e.number <= last)
    others = tuple(e for e in parsed.others if first <= e.number <= last)
    joined = "\n".join(SPACES.sub(" ", ln.text) for ln in lines)
    return ParsedLog(lines, errors, root_of(errors), joined, others, parsed.chain_starts)


def _strip(text: str) -> tuple[str, list[str], str, str]:
    """(text, origin parts, level, process name) with every known prefix removed."""
    origin: list[str] = []
    level = ""
    process = ""
    for _ in range(6):  # prefixes nest: compose column, timestamp, process, rank, level
        before = text
        text = _SYSLOG.sub("", text)
        text = _COMPOSE.sub("", text) if "|" in text[:40] else text
        text = _TIMESTAMP.sub("", text)
        m = _PROCESS.match(text)
        if m:
            origin.append(m.group(0).strip())
            process = re.sub(r",?\s*\b(?:pid|ip)=[\w.:]+", "", m.group("name")).strip()
            text = text[m.end() :]
        text = _RAY_DAEMON.sub("", text)
        m = _RANK.match(text)
        if m:
            origin.append(m.group(0).strip())
            text = text[m.end() :]
        m = _LEVEL.match(text) or _GLOG.match(text)
        if m:
            level = {"E": "ERROR", "F": "FATAL", "W": "WARNING", "I": "INFO"}.get(
                m.group("level"), m.group("level")
            )
            origin.append(m.groupdict().get("origin") or m.group("level"))
            text = text[m.end() :]
        m = _PLAIN_LEVEL.match(text)
        if m:
            level = m.group("l1") or m.group("l2")
            text = text[m.end() :]
        m = _OTHER_LEVEL.match(text)
        if m:
            found = next(g for g in m.groups() if g)
            level = {"E": "ERROR", "F": "FATAL", "W": "WARNING", "I": "INFO", "D": "DEBUG"}.get(
                found, found
            )
            text = _SOURCE_POS.sub("", text[m.end() :])
        if text == before:
            break
    return text, origin, level, process


def clean_line(raw: str) -> tuple[str, str]:
    """(text without launcher/logger prefixes, origin key of the log record)."""
    text, origin, _level, _process = _strip(_ANSI.sub("", raw).replace("\r", "").rstrip())
    return text, " ".join(origin)


def _json_record(text: str) -> tuple[list[str], str] | None:
    """(message lines, level) of a JSON log record, or None."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = next((data[k] for k in ("message", "msg", "log", "text") if k in data), None)
    if not isinstance(message, str):
        return None
    extra = next((data[k] for k in ("exc_info", "exception", "traceback") if k in data), None)
    if isinstance(extra, str) and extra:
        message = f"{message}\n{extra}"
    level = str(data.get("level") or data.get("levelname") or data.get("severity") or "")
    return message.rstrip("\n").split("\n"), level.upper()


def read_lines(text: str) -> list[LogLine]:
    """The input's lines, prefixes stripped; JSON records expanded to their message lines."""
    out: list[LogLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        plain = _ANSI.sub("", raw).replace("\r", "").rstrip()
        if _FENCE.match(plain):
            out.append(LogLine(number, raw, "", ""))
            continue
        plain = _QUOTE.sub("", plain)
        cleaned, origin, level, process = _strip(plain)
        bare = cleaned.strip()
        if bare.startswith(("`", "**", "- `", "* `")):  # markdown around a pasted line
            cleaned = _MARKDOWN.sub("", bare)
        record = _json_record(cleaned)
        if record is None:
            out.append(LogLine(number, raw, cleaned, " ".join(origin), level, process))
            continue
        messages, json_level = record
        for message in messages:
            inner, inner_origin, inner_level, inner_process = _strip(_ANSI.sub("", message))
            out.append(
                LogLine(
                    number,
                    raw,
                    inner.rstrip(),
                    " ".join(origin + inner_origin),
                    inner_level or json_level or level,
                    inner_process or process,
                )
            )
    return out


def exception_of(text: str) -> tuple[str, str] | None:
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
        or FRAME.match(text) is not None
        or TRACEBACK.match(text) is not None
        or CAUSE.match(text) is not None
        or DURING.match(text) is not None
        or _PY_WARNING.match(text) is not None
        or _GLOG.match(text) is not None
        or _PROCESS_LINE.match(text) is not None
        or exception_of(text) is not None
    )


def raise_probes(source: str) -> tuple[str, ...]:
    """Literal parts of the message written in a raise/assert source line."""
    parts: list[str] = []
    for m in _STRING.finditer(source):
        parts += [p.strip() for p in _FIELD.split(m.group("s")) if p.strip()]
    return tuple(SPACES.sub(" ", p) for p in parts if len(p) >= 12)


def parse_log(text: str) -> ParsedLog:
    """Split a log into lines and candidate errors, and find the root exception."""
    return parse_lines(read_lines(text))


def parse_lines(lines: list[LogLine]) -> ParsedLog:
    errors: list[ErrorLine] = []
    others: list[ErrorLine] = []
    used: set[int] = set()  # indices of lines that belong to tracebacks and exception messages
    frames: list[tuple[str, str]] = []
    after_frame = False
    frame_indent = 0
    cause_pending = False
    chain = -1
    chained = False
    starts: list[int] = []
    in_traceback = False
    seen_exception = False  # an exception line since the last traceback header or chain marker
    for i, line in enumerate(lines):
        body = line.text
        stripped = body.strip()
        indent = len(body) - len(body.lstrip())
        m = FRAME.match(body)
        if m:
            used.add(i)
            frames.append((m.group("path"), m.group("func") or ""))
            after_frame, frame_indent = True, indent
            continue
        if after_frame and (indent > frame_indent or _MARKERS.match(body)):
            used.add(i)
            r = _RAISE.match(body)
            probes = raise_probes(body) if r else ()
            if probes:
                others.append(
                    ErrorLine(
                        line.number,
                        line.raw,
                        r.group("type") or "AssertionError" if r else "",
                        " ".join(probes),
                        wrapper=WRAPPERS.search(" ".join(probes)) is not None,
                        kind="raise",
                        frames=tuple(frames),
                        process=line.process,
                        probes=probes,
                    )
                )
            continue
        after_frame = False
        if CAUSE.match(body) or DURING.match(body):
            if not seen_exception:
                block = _message_before(lines, i, used)
                if block:
                    used.update(block)
                    chain += 1
                    starts.append(block[0])
                    errors.append(_block_error(lines, block, chain))
            seen_exception = False
            used.add(i)
            cause_pending = bool(CAUSE.match(body))
            chained = True
            continue
        if TRACEBACK.match(body):
            used.add(i)
            if not chained:
                chain += 1
                starts.append(i)
            chained = False
            in_traceback = True
            seen_exception = False
            frames = []
            continue
        if _PY_WARNING.match(stripped):
            continue
        found = exception_of(stripped)
        if found is None and frames and indent <= frame_indent:
            m = _AFTER_FRAMES.match(stripped)
            if m and m.group("type").rsplit(".", 1)[-1][:1].isupper():
                found = m.group("type"), m.group("msg") or ""
        if found is None:
            continue
        used.add(i)
        exc_type, message = found
        parts = [f"{exc_type}: {message}" if message else exc_type]
        for j in range(i + 1, min(len(lines), i + 1 + MAX_CONTINUATION)):
            if _stops_message(lines[j], line.origin):
                break
            used.add(j)
            parts.append(lines[j].text.strip())
        full = SPACES.sub(" ", " ".join(parts)).strip()[:MAX_TEXT]
        wrapper = WRAPPERS.search(f"{exc_type}: {message}") is not None
        if not in_traceback:
            chain += 1  # an exception line outside a traceback is a chain of its own
            starts.append(i)
        errors.append(
            ErrorLine(
                line.number,
                line.raw,
                exc_type,
                full,
                wrapper,
                caused_by_previous=cause_pending,
                frames=tuple(frames),
                chain=chain,
                process=line.process,
            )
        )
        cause_pending = False
        in_traceback = False
        seen_exception = True
        frames = []
        inner = _INNER.search(full)
        if inner:
            quoted = inner.group("inner")
            inner_type = exception_of(quoted)
            errors.append(
                ErrorLine(
                    line.number,
                    line.raw,
                    inner_type[0] if inner_type else "(worker error)",
                    SPACES.sub(" ", quoted).strip(),
                    chain=chain,
                    process=line.process,
                )
            )
    others += _log_candidates(lines, used)
    others.sort(key=lambda e: e.number)
    joined = "\n".join(SPACES.sub(" ", ln.text) for ln in lines)
    return ParsedLog(
        tuple(lines), tuple(errors), root_of(errors), joined, tuple(others), tuple(starts)
    )


def _message_before(lines: list[LogLine], i: int, used: set[int]) -> list[int]:
    """Indices of the message printed just before a chain marker when no exception line was
    seen (a paste that starts inside the cause's message)."""
    block: list[int] = []
    j = i - 1
    while j >= 0 and not lines[j].text.strip():
        j -= 1
    while j >= 0 and j not in used and lines[j].text.strip() and len(block) < MAX_CONTINUATION:
        block.insert(0, j)
        j -= 1
    return block


def _block_error(lines: list[LogLine], block: list[int], chain: int) -> ErrorLine:
    first = lines[block[0]]
    text = SPACES.sub(" ", " ".join(lines[k].text.strip() for k in block)).strip()
    return ErrorLine(first.number, first.raw, "", text, chain=chain, process=first.process)


def _log_candidates(lines: list[LogLine], used: set[int]) -> list[ErrorLine]:
    """ERROR log records (with their indented continuation lines) and prose lines that speak
    of an error, outside tracebacks."""
    found: list[ErrorLine] = []
    prose: list[ErrorLine] = []
    for i, line in enumerate(lines):
        if i in used or line.level in ("INFO", "DEBUG") or len(line.text) < 8:
            continue
        is_error = line.level in ("ERROR", "CRITICAL", "FATAL")
        if not is_error and (len(line.text) < 16 or not _ERRORISH.search(line.text)):
            continue
        text = _TRAILING_TRACEBACK.sub("", SPACES.sub(" ", line.text[: 2 * MAX_TEXT]).strip())
        if GENERIC.search(text) or _PY_WARNING.match(text):
            continue
        if is_error:
            blank = 0
            for j in range(i + 1, min(len(lines), i + 1 + MAX_CONTINUATION)):
                more = lines[j].text
                if not more.strip() and blank == 0:
                    blank = 1  # one blank line may sit inside a wrapped record
                    continue
                if j in used or lines[j].level or more[:1] not in (" ", "\t"):
                    break
                used.add(j)
                text, blank = f"{text} {more.strip()}", 0
            found.append(
                ErrorLine(
                    line.number,
                    line.raw,
                    "",
                    text[:MAX_TEXT],
                    kind="error-log",
                    process=line.process,
                )
            )
        else:
            prose.append(
                ErrorLine(
                    line.number, line.raw, "", text[:MAX_TEXT], kind="prose", process=line.process
                )
            )
    return found + prose[-MAX_PROSE:]


def root_of(errors: list[ErrorLine] | tuple[ErrorLine, ...]) -> ErrorLine | None:
    """The last non-wrapper exception, or the cause it was raised from."""
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


def vllm_frame(error: ErrorLine) -> tuple[str, str] | None:
    """(path under vllm/, function) of the innermost vLLM frame of an error's traceback."""
    from servecheck.explain.families import vllm_path

    for path, func in reversed(error.frames):
        rel = vllm_path(path)
        if rel:
            return rel, func
    return None


def source_frame(error: ErrorLine) -> tuple[str, str] | None:
    """Where an error was raised: the innermost vLLM frame ('vllm/config/model.py'), else the
    innermost frame of an installed library ('site-packages/transformers/...')."""
    from servecheck.explain.families import library_path

    found = vllm_frame(error)
    if found:
        return f"vllm/{found[0]}", found[1]
    for path, func in reversed(error.frames):
        lib = library_path(path)
        if lib:
            return lib, func
    return None
