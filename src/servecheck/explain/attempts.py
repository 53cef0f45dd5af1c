"""Several attempts in one paste: where one start-up's failure ends and the next begins.

A new attempt starts (1) at a start-up banner (vLLM's version line, `non-default args`, the
engine's initialisation line, a `vllm serve` command) once an error has been seen since the
last split, or (2) at a traceback whose root error differs from the previous traceback's, when
both come from the same process (or neither names one) and neither is a generic wrapper (an
exception line without a traceback counts only with a few lines of other text before it). Ranks
of one launch print from processes of different names, so their tracebacks stay together.
Parts with no exception, raise line or ERROR record join the attempt before them.
"""

from __future__ import annotations

import re
from itertools import pairwise

from servecheck.explain.reading import TRACEBACK, ErrorLine, LogLine, ParsedLog, root_of

_BANNER = re.compile(
    r"vLLM API server version \S+|Starting vLLM API server|Initializing an? (?:V1 )?LLM engine"
    r"|\bnon-default args:|^\s*(?:\$|#|>>>)?\s*(?:vllm serve|python3? -m vllm\.entrypoints)\b"
)
# Exception lines without a traceback are separate attempts only with other text between them.
MIN_GAP = 3
_NUMBERS = re.compile(r"0x[0-9a-f]+|\d+")


def _key(error: ErrorLine) -> str:
    return _NUMBERS.sub("#", error.text[:200])


def split_attempts(parsed: ParsedLog) -> list[tuple[int, int]]:
    """[start, end) index ranges of `parsed.lines`, one per attempt, in order."""
    lines = parsed.lines
    if not lines:
        return [(0, 0)]
    index = {line.number: i for i, line in reversed(list(enumerate(lines)))}
    marks = sorted(
        index[e.number]
        for e in (*parsed.errors, *parsed.others)
        if not e.wrapper and e.kind in ("exception", "raise", "error-log")
    )
    cuts = set(_banner_cuts(lines, marks)) | set(_traceback_cuts(parsed, index))
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(lines)), len(lines)]
    spans = [(a, b) for a, b in pairwise(bounds) if b > a]
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        has_error = any(a <= m < b for m in marks)
        if merged and not has_error:
            merged[-1] = (merged[-1][0], b)
        elif merged and not any(merged[-1][0] <= m < merged[-1][1] for m in marks):
            merged[-1] = (merged[-1][0], b)  # a leading part without errors joins the next
        else:
            merged.append((a, b))
    return merged or [(0, len(lines))]


def _banner_cuts(lines: tuple[LogLine, ...], marks: list[int]) -> list[int]:
    cuts = []
    last = 0
    for i, line in enumerate(lines):
        if _BANNER.search(line.text) and any(last <= m < i for m in marks):
            cuts.append(i)
            last = i
    return cuts


def _traceback_cuts(parsed: ParsedLog, index: dict[int, int]) -> list[int]:
    chains: dict[int, list[ErrorLine]] = {}
    for error in parsed.errors:
        chains.setdefault(error.chain, []).append(error)
    cuts = []
    previous: ErrorLine | None = None
    for chain in sorted(chains):
        root = root_of(chains[chain])
        if root is None:
            continue  # a wrapper's traceback belongs to the attempt before it
        start = parsed.chain_starts[chain] if 0 <= chain < len(parsed.chain_starts) else -1
        if (
            previous is not None
            and start >= 0
            and root.process == previous.process
            and _key(root) != _key(previous)
            and (
                TRACEBACK.match(parsed.lines[start].text)
                or start - index.get(previous.number, start) > MIN_GAP
            )
        ):
            cuts.append(start)
        previous = root
    return cuts
