"""Shared test helpers: paths of the committed fixtures and examples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture
def fixture_path():
    def get(name: str) -> Path:
        path = FIXTURES / name
        assert path.is_dir(), f"missing fixture {name}"
        return path

    return get
