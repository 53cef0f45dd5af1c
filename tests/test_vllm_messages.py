"""The mined table of vLLM's start-up messages (knowledge/vllm_messages.json) and the script that
writes it (scripts/extract_vllm_messages.py): templates from real Python source, every mined
message recognised when vLLM prints it, families that exist, releases that exist."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap

import pytest

from conftest import ROOT
from servecheck.explain import explain_text, load_families, load_mined
from servecheck.explain.mined import template_regex
from servecheck.explain.reading import WRAPPERS
from servecheck.knowledge import load_toml

SCRIPT = ROOT / "scripts" / "extract_vllm_messages.py"


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("extract_vllm_messages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["extract_vllm_messages"] = module
    spec.loader.exec_module(module)
    return module


def test_table_size_families_and_releases():
    table = load_mined()
    assert len(table.rows) >= 300
    families = load_families()
    releases = load_toml("vllm_releases.toml")["releases"]
    raw = json.loads((ROOT / "src/servecheck/knowledge/vllm_messages.json").read_text())
    assert raw["releases"] == releases
    assert all(raw["per_release"][r] >= 300 for r in releases)
    for row in table.rows:
        assert row.family in families, row
        for span in row.releases.split(","):
            for end in span.split(".."):
                assert end in releases, (row.id, row.releases)
    assert len({row.id for row in table.rows}) == len(table.rows)
    assert {row.family for row in table.rows} >= {
        "memory",
        "parallelism",
        "kernel",
        "moe",
        "quantization-config",
        "attention",
        "weight-loading",
        "config-validation",
    }


def _fill(template: str) -> str:
    """The message vLLM prints for a template, with made-up values for the formatted parts."""
    out = re.sub(r"\{\{", "\x00", template)
    out = re.sub(r"\}\}", "\x01", out)
    out = re.sub(r"\{[^{}]*\}", "Qx7", out)
    return out.replace("\x00", "{").replace("\x01", "}")


def test_every_template_regex_matches_its_own_message():
    for row in load_mined().rows:
        message = _fill(row.template)
        assert template_regex(row.template).search(message), row.template


@pytest.mark.parametrize("stride_start", range(4))
def test_mined_messages_are_recognised_as_raised(stride_start):
    """A sample of the table, printed as vLLM prints it, is explained at the root by the table
    (or by a curated signature). Generic wrappers are left out: explain looks past them."""
    rows = [
        r
        for r in load_mined().rows
        if not r.exception.startswith("log.") and not WRAPPERS.search(r.template)
    ]
    misses = []
    for row in rows[stride_start::25]:
        text = f"{row.exception}: {_fill(row.template)}"
        expl = explain_text(text)
        if expl.match is None or expl.match.where != "root":
            misses.append(text)
    assert not misses, misses[:5]


def test_mined_match_names_the_vllm_source_and_family():
    text = (
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine."
    )
    mined = explain_text(text, signatures=())
    assert mined.match is not None and mined.match.signature.table == "mined"
    assert mined.family == "memory"
    assert "kv_cache_utils.py" in mined.match.signature.vllm_source
    assert "M002" in mined.match.signature.finding


def test_script_reads_templates_from_source(script, tmp_path):
    source = tmp_path / "model.py"
    source.write_text(
        textwrap.dedent(
            """
            import logging
            logger = logging.getLogger(__name__)

            class ModelConfig:
                def verify(self, heads, tp):
                    if heads % tp:
                        raise ValueError(
                            f"Total number of attention heads ({heads}) must be divisible "
                            f"by tensor parallel size ({tp})."
                        )
                    msg = "Quantization method %s is not supported on this GPU" % self.q
                    msg += " {yet}; please upgrade vLLM"
                    raise NotImplementedError(msg)

                def check(self, value):
                    assert value > 0, "max_model_len must be positive, got {}".format(value)
                    logger.warning("Falling back to %s because %s is not available", value, 3)
                    raise RuntimeError("short")
            """
        )
    )
    found = {(m.exception, m.template, m.function) for m in script.read_file(source, "x.py")}
    assert (
        "ValueError",
        "Total number of attention heads ({heads}) must be divisible by tensor parallel size "
        "({tp}).",
        "ModelConfig.verify",
    ) in found
    assert (
        "NotImplementedError",
        "Quantization method {q} is not supported on this GPU {{yet}}; please upgrade vLLM",
        "ModelConfig.verify",
    ) in found
    assert (
        "AssertionError",
        "max_model_len must be positive, got {value}",
        "ModelConfig.check",
    ) in found
    assert (
        "log.warning",
        "Falling back to {value} because {value} is not available",
        "ModelConfig.check",
    ) in found
    kept = [
        m
        for m in script.read_file(source, "x.py")
        if script.keep(m.exception, m.literal, m.function, "config-validation")
    ]
    assert not any(m.template == "short" for m in kept)
    # the template round-trips into a regex that matches what vLLM printed
    assert template_regex(
        "Quantization method {q} is not supported on this GPU {{yet}}; please upgrade vLLM"
    ).search("Quantization method fp8 is not supported on this GPU {yet}; please upgrade vLLM")


def test_script_ranges(script):
    releases = ["0.10.0", "0.11.0", "0.12.0", "0.13.0"]
    assert script.ranges([True, True, False, True], releases) == "0.10.0..0.11.0,0.13.0"
    assert script.ranges([False, True, True, True], releases) == "0.11.0..0.13.0"


def test_family_rules_order():
    """Precise words beat the function, the function beats the file, the file beats hints."""
    from servecheck.explain import family_of

    oom = "CUDA out of memory while creating experts"
    assert family_of(oom, "model_executor/layers/fused_moe/layer.py") == "memory"
    moe_scale = "weight_scale is not divisible by block_n"
    path = "model_executor/layers/quantization/utils/fp8_utils.py"
    assert family_of(moe_scale, path, "validate_fp8_block_shape_moe") == "moe"
    assert family_of(moe_scale, path, "validate_fp8_block_shape") == "quantization-config"
    assert family_of("the tokenizer has no chat template", "config/model.py") == "tokenizer"
    assert family_of("expert count 7 is odd", "config/model.py") == "moe"  # generic path: hints
    assert family_of("something odd happened", "config/model.py") == "config-validation"
    assert family_of("something odd happened") == "engine"
    lib = "site-packages/transformers/models/auto/configuration_auto.py"
    assert family_of("KeyError: 'mllama'", lib) == "model-architecture"


def test_release_ranges_and_the_logs_release():
    from servecheck.explain.mined import covers

    assert covers("0.10.0..0.14.1,0.20.0", "0.11.2")
    assert covers("0.10.0..0.14.1,0.20.0", "0.20.0")
    assert not covers("0.10.0..0.14.1,0.20.0", "0.15.0")
    assert covers("0.10.1.1", "0.10.1.1") and not covers("0.10.1.1", "0.10.1")
    text = (
        "(APIServer pid=1) INFO 12-01 10:00:00 [api_server.py:1] vLLM API server version 0.11.0\n"
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine."
    )
    expl = explain_text(text, signatures=())
    assert expl.vllm_version == "0.11.0"
    assert covers(expl.match.signature.releases, "0.11.0")


def test_families_link_existing_findings():
    from servecheck.findings.rules import all_rules

    registry = all_rules()
    families = load_families()
    assert {"memory", "toolchain", "kernel", "engine"} <= set(families)
    for fam in families.values():
        assert fam.title and fam.cause and fam.fix, fam.key
        for code in fam.findings:
            assert code in registry, (fam.key, code)
    assert families["memory"].findings and families["parallelism"].findings
