"""The command line: exit codes, JSON contract, markdown sections, rules."""

from __future__ import annotations

import json

from clirun import invoke
from conftest import EXAMPLES, FIXTURES, ROOT
from fixtures import broken
from servecheck.findings.rules import all_rules


def test_json_contract():
    result = invoke(["check", str(EXAMPLES / "glm-4.5-air-derestricted-fp8"), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "ok"
    assert data["model"]["architecture"] == "Glm4MoeForCausalLM"
    assert data["model"]["family"] == "GLM-4.5-Air"
    assert data["quantization"]["method"] == "compressed-tensors"
    qkv = next(m for m in data["modules"] if m["name"] == "model.layers.3.self_attn.qkv_proj")
    assert qkv["kind"] == "attn.qkv_proj" and qkv["scheme"] == "W8A8Fp8"
    assert qkv["min_capability"] == 89
    assert {"code", "severity", "message"} <= set(data["findings"][0])


def test_exit_code_one_on_errors(tmp_path):
    path = broken.ignore_only_q_proj(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    result = invoke(["check", str(path)])
    assert result.exit_code == 1
    assert "R001" in result.output and "FAIL" in result.output


def test_exit_code_two_on_bad_input(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    result = invoke(["check", str(tmp_path)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    result = invoke(["check", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_unknown_architecture_without_tensors_is_vllms_error(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["FooForCausalLM"],
                "hidden_size": 8,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "vocab_size": 8,
            }
        )
    )
    result = invoke(["check", str(tmp_path)])
    assert result.exit_code == 1 and "A001" in result.output
    assert "FooForCausalLM" in result.output


def test_unknown_architecture_with_tensors_is_derived(tmp_path):
    import shutil

    src = FIXTURES / "llama-FP8_DYNAMIC"
    shutil.copy(src / "model.safetensors", tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    cfg["architectures"] = ["MysteryForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    result = invoke(["check", str(tmp_path), "--format", "json"])
    data = json.loads(result.stdout)
    assert data["model"]["modelled"] is False
    assert "K016" in [f["code"] for f in data["findings"]]
    q = next(m for m in data["modules"] if m["name"] == "model.layers.0.self_attn.q_proj")
    assert q["scheme"] == "W8A8Fp8"


def test_markdown_sections():
    result = invoke(["check", str(EXAMPLES / "glm-4.5-fp8"), "-f", "markdown"])
    for heading in (
        "## Overview",
        "## Model",
        "## Quantization",
        "## Module resolution",
        "## Findings",
        "## Recommendation",
    ):
        assert heading in result.stdout
    assert "GLM-4.5 " in result.stdout or "| Family | GLM-4.5 |" in result.stdout


def test_rules_list_and_explain():
    result = invoke(["rules"])
    assert result.exit_code == 0
    for code in all_rules():
        assert code in result.stdout
    result = invoke(["rules", "R001"])
    assert "fused-shards-differ" in result.stdout and "Fix" in result.stdout
    assert invoke(["rules", "Z999"]).exit_code == 2


def test_every_rule_documents_itself():
    for code, rule in all_rules().items():
        doc = rule.doc()
        assert len(doc.splitlines()) >= 3, code
        assert rule.vllm_ref


def test_mla_is_shown_as_mla_with_its_latent_rank():
    deepseek = ROOT / "tests" / "data" / "plan" / "deepseek-v3-fp8"
    text = invoke(["check", str(deepseek)]).stdout
    assert "128 heads, MLA (latent rank 512 + rope 64, q rank 1536)" in text
    assert "128 KV" not in text
    md = invoke(["check", str(deepseek), "-f", "markdown"]).stdout
    assert "| attention | 128 heads, MLA (latent rank 512" in md


def test_kv_cache_row_shows_the_dtype_vllm_uses(tmp_path):
    # A ModelOpt FP8 checkpoint with an FP8 KV cache (hf_quant_config.json), config only.
    llama = ROOT / "tests" / "data" / "plan" / "llama-3.1-8b"
    (tmp_path / "config.json").write_text((llama / "config.json").read_text())
    quant = {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}
    side = {"producer": {"name": "modelopt"}, "quantization": quant}
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(side))
    text = invoke(["check", str(tmp_path)]).stdout
    kv_row = next(line for line in text.splitlines() if line.startswith("attn.kv_cache"))
    assert "fp8 (checkpoint scales)" in kv_row and "unquantized" not in kv_row
    planned = json.loads(invoke(["check", str(tmp_path), "--gpu", "H100", "-f", "json"]).stdout)
    assert planned["plan"]["kv_cache_dtype"] == "fp8"
    assert planned["quantization"]["kv_cache_dtype"] == "fp8"
    plain = json.loads(invoke(["check", str(llama), "-f", "json"]).stdout)
    assert plain["quantization"]["kv_cache_dtype"] is None


def test_markdown_report_agrees_with_itself():
    args = ["check", str(EXAMPLES / "glm-4.5-air-derestricted-fp8"), "--gpu", "RTX PRO 6000"]
    md = invoke([*args, "--gpus", "2", "--format", "markdown"]).stdout
    data = json.loads(invoke([*args, "--gpus", "2", "--format", "json"]).stdout)
    command = data["plan"]["command"]
    assert "--tensor-parallel-size 2" in command
    load_test = md.split("Load test", 1)[1]
    assert f"```bash\n{command}\n```" in load_test  # exactly the plan's recommended command
    for f in data["findings"]:  # each finding appears once
        assert md.count(f"**{f['code']}**") + md.count(f" {f['code']} `") == 1, f["code"]
    assert "<svg" not in md and "data:image/svg+xml;base64," in md
