"""The tiny configs tests/test_vllm_arch.py builds in vLLM (tests/fixtures/arch_configs.py),
checked here without vLLM: each published-derived one is modelled exactly, without an error,
and keeps the layer-type pattern it was cut from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.arch_configs import cases
from servecheck.api import check

CASES = {n: c for n, c in cases().items() if not c.get("_with_defaults")}
# layer kinds each cut keeps (cache layers in order)
PATTERNS = {
    "gemma3": ["sliding"] * 5 + ["full"],
    "cohere2": ["sliding"] * 3 + ["full"],
    "exaone4": ["sliding"] * 3 + ["full"],
    "qwen3-next": ["gdn"] * 3 + ["full"],
    "nemotron-h": ["mamba2"] * 4 + ["full"],
    "granite4-h": ["mamba2"] * 5 + ["full"],
    "llama4": ["chunked"] * 3 + ["full"],
    "mistral3": ["full", "full"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_config_is_modelled_exactly(name: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CASES[name]))
    report = check(tmp_path, vllm_version="0.32.0")
    assert report.inventory.derivation == "exact"
    errors = [f.code for f in report.findings if f.severity.value == "error"]
    assert not errors
    kinds = [c.kind for c in report.inventory.cache_layers if not c.mtp]
    if name in PATTERNS:
        assert kinds == PATTERNS[name]


def test_the_cuts_cover_every_pattern_kind() -> None:
    kinds = set()
    for config in CASES.values():
        text = config.get("text_config") or config
        kinds |= set(text.get("layer_types") or [])
        kinds |= set(text.get("hybrid_override_pattern") or "")
    assert {"sliding_attention", "full_attention", "mamba", "attention"} <= kinds
    assert {"M", "*", "-"} <= kinds
