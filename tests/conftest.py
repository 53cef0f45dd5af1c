"""Shared test helpers: paths of the committed fixtures and examples."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# No test reads the user's Hugging Face cache or token, or reaches the network: the HF home
# and servecheck's cache are private to this run, and the Hub endpoint is a closed loopback
# port (tests that need a Hub start tests/hub_server.py and point HF_ENDPOINT at it). Set
# before anything imports huggingface_hub, which reads them once.
_HOME = Path(tempfile.mkdtemp(prefix="servecheck-tests-"))
os.environ["HF_HOME"] = str(_HOME / "hf")
os.environ["SERVECHECK_CACHE_DIR"] = str(_HOME / "servecheck")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _var in (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
):
    os.environ.pop(_var, None)

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
