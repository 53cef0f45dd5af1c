"""Families of vLLM failures (knowledge/explain_families.toml): cause and fix per family, and
the rule that gives a message its family from its words and the vLLM file that raised it.

scripts/extract_vllm_messages.py uses the same rule when it mines vLLM, so a message's family
in the mined table and an unknown error's family guessed here agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

FAMILIES_FILE = "explain_families.toml"
DEFAULT = "engine"


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    cause: str
    fix: str
    findings: tuple[str, ...]
    paths: tuple[str, ...]
    functions: tuple[re.Pattern[str], ...]
    words: tuple[re.Pattern[str], ...]
    hints: tuple[re.Pattern[str], ...]
    generic: bool


def _family(row: Mapping[str, Any]) -> Family:
    def text(value: str) -> str:
        return re.sub(r"\s+", " ", value).strip()

    return Family(
        key=row["key"],
        title=row["title"],
        cause=text(row["cause"]),
        fix=text(row["fix"]),
        findings=tuple(row.get("findings", ())),
        paths=tuple(row.get("paths", ())),
        functions=tuple(re.compile(f) for f in row.get("functions", ())),
        words=tuple(re.compile(w, re.I) for w in row.get("words", ())),
        hints=tuple(re.compile(w, re.I) for w in row.get("hints", ())),
        generic=bool(row.get("generic", False)),
    )


@lru_cache(maxsize=1)
def load_families() -> dict[str, Family]:
    """Every family by key, in file order (the order the word rules are tried in)."""
    from servecheck.knowledge import load_toml

    rows = load_toml(FAMILIES_FILE)["family"]
    return {row["key"]: _family(row) for row in rows}


def vllm_path(path: str) -> str:
    """A file's path inside the vllm package ('config/model.py'), or '' when it is not vLLM's."""
    path = path.replace("\\", "/")
    m = re.search(r"(?:^|/)vllm/(?!.*/vllm/)(.+)$", path)
    return m.group(1) if m else ""


def library_path(path: str) -> str:
    """'site-packages/<library>/...' for an installed library's file, else ''."""
    m = re.search(r"(?:site|dist)-packages/(.+)$", path.replace("\\", "/"))
    return f"site-packages/{m.group(1)}" if m else ""


def words_family(text: str) -> str | None:
    """The family one of whose precise words occurs in `text`, or None."""
    for fam in load_families().values():
        if any(w.search(text) for w in fam.words):
            return fam.key
    return None


def family_of(text: str, path: str = "", function: str = "") -> str:
    """The family of a message raised in `path` (under vllm/, or `site-packages/...` for a
    library's file; may be empty) by `function`."""
    found = words_family(text)
    if found:
        return found
    families = load_families().values()
    if function:
        for fam in families:
            if any(f.search(function) for f in fam.functions):
                return fam.key
    best: tuple[int, Family] | None = None
    if path:
        for fam in families:
            for prefix in fam.paths:
                if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), fam)
    if best is not None and not best[1].generic:
        return best[1].key
    for fam in families:
        if any(w.search(text) for w in fam.hints):
            return fam.key
    return best[1].key if best is not None else DEFAULT
