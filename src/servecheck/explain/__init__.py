"""Explain a vLLM log or traceback: find the root error and say what it means.

Reading (reading.py) strips what launchers and loggers add to each line and collects every
candidate error; attempts.py splits a paste holding several start-ups; engine.py ranks the
candidates and matches them, first against the curated signatures (curated.py,
knowledge/signatures.toml), then against every message vLLM can raise or log while starting
(mined.py, knowledge/vllm_messages.json, mined from the released wheels by
scripts/extract_vllm_messages.py), whose cause and fix are written per family (families.py,
knowledge/explain_families.toml). Nothing here imports vLLM or torch.
"""

from servecheck.explain.curated import Match, Signature, literal_length, load_signatures
from servecheck.explain.engine import Explanation, Nearest, explain_text
from servecheck.explain.families import family_of, load_families
from servecheck.explain.mined import load_mined
from servecheck.explain.reading import ErrorLine, LogLine, ParsedLog, clean_line, parse_log

__all__ = [
    "ErrorLine",
    "Explanation",
    "LogLine",
    "Match",
    "Nearest",
    "ParsedLog",
    "Signature",
    "clean_line",
    "explain_text",
    "family_of",
    "literal_length",
    "load_families",
    "load_mined",
    "load_signatures",
    "parse_log",
]
