"""The mined table (knowledge/vllm_messages.json): every message vLLM can raise or log while it
starts, per release, as written by scripts/extract_vllm_messages.py; matching a candidate error
against it, and the nearest messages for an error nobody knows.

Thousands of templates, so matching is indexed: each template is filed under its rarest literal
word (its anchor), a candidate is tried only against the templates whose anchor it contains,
and a template's regex is compiled the first time it is tried. A template becomes a regex with
its literal text kept (any run of spaces matching any whitespace) and each `{name}`
placeholder a lazy group; a raise line under a traceback frame, which shows only the literal
parts of the message, is matched by those parts instead.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servecheck.explain.reading import ErrorLine

MESSAGES_FILE = "vllm_messages.json"
# Specificity a match gains when the candidate agrees with the row beyond the text.
SAME_EXCEPTION = 10
SAME_FILE = 30
SAME_FUNCTION = 20
SAME_RELEASE = 15
MIN_PROBE = 20  # literal characters of a raise line that must match a template

_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,}")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Mined:
    """One message of the mined table."""

    exception: str  # class raised, or log.error / log.warning
    template: str
    file: str  # under vllm/
    function: str
    releases: str
    family: str
    words: frozenset[str]  # whole words of 4+ characters of the literal text, lower case

    @cached_property
    def pieces(self) -> tuple[str, ...]:
        """Literal text between placeholders, lower case, spaces collapsed."""
        return _pieces(self.template)[1]

    @property
    def id(self) -> str:
        digest = hashlib.sha1(f"{self.exception}:{self.template}".encode()).hexdigest()[:6]
        return f"vllm:{self.file}:{self.function}:{digest}"

    @property
    def literal(self) -> int:
        return sum(len(p) for p in self.pieces)


@dataclass(frozen=True)
class MinedMatch:
    row: Mined
    fields: Mapping[str, str]
    matched_text: str
    specificity: int
    tail: str = ""  # what the template's last placeholder holds (a wrapped error's text)


def _pieces(template: str) -> tuple[list[tuple[bool, str]], tuple[str, ...]]:
    """([(is_placeholder, text)], literal pieces in lower case)."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _PART.finditer(template):
        if m.start() > pos:
            parts.append((False, template[pos : m.start()]))
        if m.group(0) in ("{{", "}}"):
            parts.append((False, m.group(0)[0]))
        else:
            parts.append((True, m.group(1)))
        pos = m.end()
    if pos < len(template):
        parts.append((False, template[pos:]))
    merged: list[tuple[bool, str]] = []
    for is_ph, text in parts:
        if merged and not is_ph and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + text)
        else:
            merged.append((is_ph, text))
    literal = tuple(
        _SPACES.sub(" ", t).strip().lower() for is_ph, t in merged if not is_ph and t.strip()
    )
    return merged, literal


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_WHOLE_WORD = re.compile(r"(?<![\x00\w])[A-Za-z][A-Za-z0-9_]{3,}(?![\w\x00])")


def whole_words(template: str) -> frozenset[str]:
    """Words of the literal text that a printed message shows whole: a word glued to a
    placeholder ('uint8{dtype}') is left out, as the message prints it glued to a value."""
    text = _PLACEHOLDER.sub("\x00", template.replace("{{", "(").replace("}}", ")"))
    return frozenset(w.lower() for w in _WHOLE_WORD.findall(text))


def template_regex(template: str) -> re.Pattern[str]:
    """The regex a template's message matches (named groups for the placeholders)."""
    parts, _ = _pieces(template)
    out: list[str] = []
    used: set[str] = set()
    for i, (is_ph, text) in enumerate(parts):
        if not is_ph:
            words = text.split()
            lead = r"\s*" if text[:1].isspace() and i else ""
            trail = r"\s*" if text[-1:].isspace() and i < len(parts) - 1 else ""
            out.append(lead + r"\s*".join(re.escape(w) for w in words) + trail)
            continue
        name = re.sub(r"\W", "_", text) or "value"
        if not name[0].isalpha():
            name = f"v_{name}"
        base, n = name, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        if i == 0:
            out.append(f"(?P<{name}>.{{0,80}}?)")
        elif i == len(parts) - 1:
            out.append(f"(?P<{name}>.*)")  # often another error's text: keep all of it
        else:
            out.append(f"(?P<{name}>.{{0,300}}?)")
    return re.compile("".join(out))


class MinedTable:
    """The mined messages, indexed by anchor word; regexes compiled on first use."""

    def __init__(self, rows: list[Mined]) -> None:
        self.rows = rows
        counts: dict[str, int] = {}
        for row in rows:
            for word in row.words:
                counts[word] = counts.get(word, 0) + 1
        self.by_anchor: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            words = row.words
            if not words:
                continue
            anchor = min(words, key=lambda w: (counts[w], -len(w), w))
            self.by_anchor.setdefault(anchor, []).append(i)
        self.idf = {w: math.log(len(rows) / n) for w, n in counts.items()}
        self.max_idf = math.log(max(len(rows), 2))
        self._regex: dict[int, re.Pattern[str]] = {}
        self._by_word: dict[str, list[int]] | None = None

    def _candidates(self, text: str) -> list[int]:
        words = {w.lower() for w in _WORD.findall(text)}
        found: list[int] = []
        for word in words:
            found += self.by_anchor.get(word, ())
        return sorted(set(found))

    def _compiled(self, i: int) -> re.Pattern[str]:
        pattern = self._regex.get(i)
        if pattern is None:
            pattern = self._regex[i] = template_regex(self.rows[i].template)
        return pattern

    def match(self, error: ErrorLine, version: str | None = None) -> MinedMatch | None:
        """The most specific mined message this candidate error is an instance of (a message
        of the vLLM release the log names, when it names one, before another's)."""
        from servecheck.explain.reading import vllm_frame

        frame = vllm_frame(error)
        best: MinedMatch | None = None
        for i in self._candidates(error.text):
            row = self.rows[i]
            found = self._probe(row, error) if error.kind == "raise" else self._search(i, error)
            if found is None:
                continue
            fields, text, score = found
            if row.exception.rsplit(".", 1)[-1] == error.exception.rsplit(".", 1)[-1]:
                score += SAME_EXCEPTION
            if version and covers(row.releases, version):
                score += SAME_RELEASE
            if frame is not None and frame[0] == row.file:
                score += SAME_FILE
                if frame[1] == row.function.rsplit(".", 1)[-1]:
                    score += SAME_FUNCTION
            if best is None or score > best.specificity:
                tail = ""
                if row.template.endswith("}") and not row.template.endswith("}}") and fields:
                    tail = list(fields.values())[-1]
                best = MinedMatch(row, fields, text, score, tail)
        return best

    def _search(self, i: int, error: ErrorLine) -> tuple[dict[str, str], str, int] | None:
        m = self._compiled(i).search(error.text)
        if m is None:
            return None
        fields = {k: v for k, v in m.groupdict().items() if v}
        return fields, m.group(0), self.rows[i].literal

    @staticmethod
    def _probe(row: Mined, error: ErrorLine) -> tuple[dict[str, str], str, int] | None:
        matched = 0
        for probe in error.probes:
            p = probe.lower()
            if len(p) < MIN_PROBE:
                continue
            if any(p in piece or (len(piece) >= MIN_PROBE and piece in p) for piece in row.pieces):
                matched += len(p)
        return ({}, " ".join(error.probes), matched) if matched else None

    def weight(self, words: set[str] | frozenset[str]) -> float:
        return sum(self.idf.get(w, self.max_idf) for w in words)

    def similarity(self, a: str, b: str) -> float:
        """Cosine of the word sets of two texts, words weighted by their rarity in the table."""
        wa, wb = words_of(a), words_of(b)
        if not wa or not wb:
            return 0.0
        return self.weight(wa & wb) / math.sqrt(self.weight(wa) * self.weight(wb))

    def nearest(self, text: str, limit: int = 3) -> list[tuple[Mined, float]]:
        """Messages sharing the most (rare) words with `text`, best first."""
        words = words_of(text)
        if not words:
            return []
        if self._by_word is None:
            index: dict[str, list[int]] = {}
            for i, row in enumerate(self.rows):
                for word in row.words:
                    index.setdefault(word, []).append(i)
            self._by_word = index
        shared: dict[int, set[str]] = {}
        for word in words:
            for i in self._by_word.get(word, ()):
                shared.setdefault(i, set()).add(word)
        own = self.weight(words)
        scored = []
        for i, common in shared.items():
            if len(common) < 2:
                continue
            score = self.weight(common) / math.sqrt(own * self.weight(self.rows[i].words))
            scored.append((score, i))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [(self.rows[i], round(score, 2)) for score, i in scored[:limit]]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])


def covers(releases: str, version: str) -> bool:
    """Whether a row's release ranges ('0.10.0..0.14.1,0.20.0') hold `version`."""
    key = _key(version)
    for span in releases.split(","):
        first, _, last = span.partition("..")
        if _key(first) <= key <= _key(last or first):
            return True
    return False


def words_of(text: str) -> set[str]:
    """Words of 4+ characters, lower case."""
    return {w.lower() for w in _WORD.findall(text)}


def _rows(data: Mapping[str, Any]) -> list[Mined]:
    rows = []
    for file, functions in data["files"].items():
        for function, entries in functions.items():
            for exception, template, releases, family in entries:
                words = whole_words(template)
                rows.append(Mined(exception, template, file, function, releases, family, words))
    return rows


@lru_cache(maxsize=1)
def load_mined() -> MinedTable:
    """The mined table, read and indexed once per process."""
    from servecheck.knowledge import load_json

    return MinedTable(_rows(load_json(MESSAGES_FILE)))
