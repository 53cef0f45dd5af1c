"""Data tables (TOML) shipped with servecheck, loaded through importlib.resources."""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def load_toml(name: str) -> dict[str, Any]:
    """Parse one of the package's knowledge files."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)
