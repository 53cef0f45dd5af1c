"""servecheck fix: ignore lists derived from the headers, verified by re-running check.

The broken checkpoints are real fixture checkpoints rewritten by tests/fixtures/broken.py;
"passes check" is always decided by servecheck's own `check` on the result (no error
findings), run again here on the written folder, not taken from the fix's own report.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from clirun import invoke
from conftest import EXAMPLES
from fixtures import broken
from servecheck.api import check
from servecheck.api import fix as run_fix
from servecheck.api import propose_fix as propose
from servecheck.errors import WriteError
from servecheck.fix import FixError

O_PROJ = "model.layers.0.self_attn.o_proj"


def errors(report) -> list[str]:
    return sorted({f.code for f in report.findings if f.severity.value == "error"})


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def set_ignore(path: Path, entries: list, key: str = "ignore") -> Path:
    cfg = json.loads((path / "config.json").read_text())
    cfg["quantization_config"][key] = entries
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return path


def copy_fixture(name: str, dst: Path) -> Path:
    shutil.copytree(broken.fixture(name), dst)
    return dst


@pytest.fixture
def dequantized_o_proj(tmp_path) -> Path:
    """An FP8 module stored BF16 (its scale removed) while the config still quantizes it."""
    return broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c", O_PROJ)


@pytest.fixture
def emptied_router(tmp_path) -> Path:
    """Qwen3-MoE FP8 with its ignore list emptied: lm_head and the router are stored BF16."""
    return set_ignore(copy_fixture("qwen3moe-FP8_DYNAMIC", tmp_path / "c"), [])


# --------------------------------------------------------------------------- the checkpoint fix


def test_dequantized_module_fix_passes_check(dequantized_o_proj, tmp_path):
    before = check(dequantized_o_proj)
    assert errors(before) == ["K008"]
    outcome = run_fix(dequantized_o_proj, out=tmp_path / "fixed")
    assert outcome.proposal.after == (O_PROJ, "lm_head")
    assert outcome.proposal.verified and not outcome.proposal.unfixable
    assert ("K008", "gone") in outcome.targeted
    assert outcome.exit_code == 0
    # Proof, independent of the fix's own report: check the written overlay from scratch.
    after = check(tmp_path / "fixed")
    assert errors(after) == [] and after.verdict == "ok"
    res = after.resolution.by_name()
    assert res[O_PROJ].scheme is None and res[O_PROJ].ignored
    assert res["model.layers.0.self_attn.qkv_proj"].scheme == "W8A8Fp8"


def test_emptied_ignore_list_gets_exact_regex(emptied_router, tmp_path):
    before = check(emptied_router)
    assert "K008" in errors(before)
    outcome = run_fix(emptied_router, out=tmp_path / "fixed")
    # One anchored regex for the router (exact over this inventory), lm_head by name.
    assert outcome.proposal.after == (r"re:.*mlp\.gate$", "lm_head")
    after = check(tmp_path / "fixed")
    assert errors(after) == []
    res = after.resolution.by_name()
    assert res["model.layers.1.mlp.gate"].ignored
    # The regex did not catch the dense layer's gate_proj shard (it would split gate_up_proj).
    assert res["model.layers.0.mlp.gate_up_proj"].scheme == "W8A8Fp8"


@pytest.mark.parametrize("version", ["0.11.0", "0.24.0", "0.33.0"])
def test_fix_verifies_under_each_vllm_version(emptied_router, version):
    outcome = run_fix(emptied_router, vllm_version=version)
    assert outcome.after.version.effective == version
    assert errors(outcome.after) == [], version


def test_quantized_module_wrongly_ignored_is_removed(tmp_path):
    path = set_ignore(copy_fixture("llama-FP8_DYNAMIC", tmp_path / "c"), [O_PROJ, "lm_head"])
    before = check(path)
    assert "K008" in errors(before)
    outcome = run_fix(path, out=tmp_path / "fixed")
    assert outcome.proposal.after == ("lm_head",)
    dropped = {v.entry: v for v in outcome.proposal.dropped}
    assert dropped[O_PROJ].code == "quantized"
    assert "stored quantized" in dropped[O_PROJ].reason
    assert errors(check(tmp_path / "fixed")) == []


def test_splitting_entry_is_removed(tmp_path):
    path = broken.ignore_only_q_proj(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    assert "R001" in errors(check(path))
    outcome = run_fix(path)
    assert "model.layers.0.self_attn.q_proj" not in outcome.proposal.after
    assert ("R001", "gone") in outcome.targeted
    assert errors(outcome.after) == []


def test_diff_touches_only_the_ignore_list(dequantized_o_proj):
    outcome = run_fix(dequantized_o_proj)
    changed = [
        line
        for line in outcome.diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [f'+      "{O_PROJ}",']
    # The original file is untouched without --write / --out.
    assert O_PROJ not in (dequantized_o_proj / "config.json").read_text()


def test_nothing_to_fix_on_a_consistent_checkpoint(fixture_path):
    outcome = run_fix(fixture_path("llama-FP8_DYNAMIC"))
    assert not outcome.proposal.changed and outcome.diff == ""
    assert outcome.exit_code == 0


# --------------------------------------------------------------------------- cannot be fixed


def test_quantized_router_cannot_be_fixed_by_config(tmp_path):
    path = broken.fp8_router_gate(broken.fixture("glm4moe-FP8_DYNAMIC"), tmp_path / "c")
    outcome = run_fix(path)
    assert outcome.exit_code == 1
    (problem,) = outcome.proposal.unfixable
    assert problem.module == "model.layers.1.mlp.gate" and problem.code == "K012"
    assert "re-quantize" in problem.remedy
    result = invoke(["fix", str(path)])
    assert result.exit_code == 1
    assert "Cannot be fixed by config.json" in result.output


def test_fused_layer_stored_mixed_cannot_be_fixed(tmp_path):
    # q_proj stored BF16, k_proj and v_proj FP8: one fused qkv_proj cannot hold both.
    path = broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    proposal = propose(check(path))
    (problem,) = proposal.unfixable
    assert problem.module == "model.layers.0.self_attn.qkv_proj"
    assert "stored differently" in problem.reason
    # It does not "fix" it by ignoring q_proj alone (that would split the fused layer).
    assert "model.layers.0.self_attn.q_proj" not in proposal.after


def test_experts_not_ignorable_in_vllm_0_11(tmp_path):
    # bf16 Qwen3-MoE weights under an FP8 config: the ignore list fixes every module in 0.33;
    # vLLM 0.11 quantizes experts with the "Linear" target's scheme regardless of ignore.
    path = copy_fixture("qwen3moe-bf16", tmp_path / "c")
    cfg = json.loads((path / "config.json").read_text())
    fp8 = json.loads((broken.fixture("qwen3moe-FP8_DYNAMIC") / "config.json").read_text())
    cfg["quantization_config"] = {**fp8["quantization_config"], "ignore": []}
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    new = run_fix(path)
    assert new.exit_code == 0 and errors(new.after) == []
    assert r"re:.*experts\.\d+\.gate_proj$" in new.proposal.after
    assert any("removing quantization_config" in n for n in new.proposal.notes)
    old = run_fix(path, vllm_version="0.11.0")
    assert old.exit_code == 1
    (problem,) = old.proposal.unfixable
    assert problem.module == "model.layers.1.mlp.experts"
    assert "without consulting the ignore list" in problem.reason
    assert not any("experts" in e for e in old.proposal.after)


# --------------------------------------------------------------------------- plain fp8


@pytest.fixture
def fp8_plain(tmp_path) -> Path:
    """The dequantized-o_proj checkpoint described with vLLM's plain fp8 method."""
    path = broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c", O_PROJ)
    cfg = json.loads((path / "config.json").read_text())
    cfg["quantization_config"] = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "ignored_layers": [],
    }
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return path


def test_plain_fp8_gets_exact_names(fp8_plain):
    assert errors(check(fp8_plain)) == ["K008"]
    outcome = run_fix(fp8_plain)
    assert str(outcome.proposal.location) == "quantization_config.ignored_layers"
    assert outcome.proposal.after == (O_PROJ, "lm_head")
    assert not any(e.startswith("re:") for e in outcome.proposal.after)
    assert errors(outcome.after) == []


def test_plain_fp8_refuses_regexes(fp8_plain):
    proposal = propose(check(fp8_plain), "explicit")
    regexes = [v for v in proposal.verdicts if v.entry.startswith("re:")]
    assert regexes and all(not v.accepted and v.code == "fp8-regex" for v in regexes)
    assert "exact name" in regexes[0].reason


# ------------------------------------------------------------------------- conventional, explicit


def test_safe_and_comprehensive_refuse_with_reasons(tmp_path):
    # Current list: q_proj and o_proj (stored FP8), a bare name, lm_head.
    path = set_ignore(
        copy_fixture("llama-FP8_DYNAMIC", tmp_path / "c"),
        ["model.layers.0.self_attn.q_proj", O_PROJ, "embed_tokens", "lm_head"],
    )
    for strategy in ("conventional", "explicit"):
        proposal = propose(check(path), strategy)
        by_entry = {v.entry: v for v in proposal.verdicts if v.source == "current"}
        q = by_entry["model.layers.0.self_attn.q_proj"]
        assert not q.accepted and q.code == "quantized"  # stored FP8 comes first
        quant = by_entry[O_PROJ]
        assert not quant.accepted and quant.code == "quantized"
        bare = by_entry["embed_tokens"]
        assert not bare.accepted and bare.code == "nothing"
        assert "'model.embed_tokens'" in bare.reason
        norm = next(v for v in proposal.verdicts if v.entry == "model.norm")
        assert not norm.accepted and "norm" in norm.reason
        assert by_entry["lm_head"].accepted
        assert proposal.verified
        assert errors(check_config(path, proposal.config)) == []


def test_split_is_refused(tmp_path):
    # Config only (the seed's situation): ignoring layer 3's q_proj alone splits qkv_proj.
    cfg = json.loads((EXAMPLES / "glm-4.5-air-derestricted-fp8" / "config.json").read_text())
    cfg["quantization_config"]["ignore"] = ["model.layers.3.self_attn.q_proj", "lm_head"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    report = check(path)
    assert "R001" in errors(report)
    proposal = propose(report, "conventional")
    q = next(v for v in proposal.verdicts if v.entry == "model.layers.3.self_attn.q_proj")
    assert not q.accepted and q.code == "split"
    assert "splits fused layer model.layers.3.self_attn.qkv_proj" in q.reason
    assert "k_proj, v_proj" in q.reason
    assert proposal.after == ("lm_head",)
    assert ("R001", "gone") in run_fix(path, "conventional").targeted


def test_split_judged_on_the_whole_list(tmp_path):
    # Layer 0's q, k and v all stored BF16 and only q_proj ignored: the header-derived entries
    # add k_proj and v_proj, so the final list covers the whole fused layer and keeps q_proj.
    src = broken.fixture("llama-FP8_DYNAMIC")
    for i, shard in enumerate(("q_proj", "k_proj", "v_proj")):
        src = broken.dequantized_module(
            src, tmp_path / f"d{i}", f"model.layers.0.self_attn.{shard}"
        )
    set_ignore(src, ["model.layers.0.self_attn.q_proj", "lm_head"])
    report = check(src)
    assert "R001" in errors(report)
    proposal = propose(report, "conventional")
    shards = [f"model.layers.0.self_attn.{s}" for s in ("q_proj", "k_proj", "v_proj")]
    assert set(shards) <= set(proposal.after)
    q = next(v for v in proposal.verdicts if v.entry == shards[0])
    assert q.accepted and q.code == "keeps"
    assert errors(check_config(src, proposal.config)) == []


def check_config(path: Path, config: dict):
    """check() on a copy of `path` with another config.json."""
    n = len(list(path.parent.glob(path.name + "-cfg*")))
    dst = path.parent / f"{path.name}-cfg{n}"
    shutil.copytree(path, dst)
    (dst / "config.json").write_text(json.dumps(config))
    return check(dst)


def test_explicit_adapts_to_real_layer_count_config_only():
    # GLM-4.5-Air example (46 layers + 1 MTP): per-layer entries for its own layers only.
    proposal = propose(check(EXAMPLES / "glm-4.5-air-derestricted-fp8"), "explicit")
    per_layer = [v for v in proposal.verdicts if v.source.startswith("per layer")]
    layers = {int(v.entry.split(".")[2]) for v in per_layer if v.entry.startswith("model.layers.")}
    assert layers == set(range(47))
    routers = [v for v in per_layer if v.entry.endswith(".mlp.gate")]
    assert len(routers) == 46  # layers 1..45 + the MTP layer 46 (first_k_dense_replace 1)
    assert all(not v.accepted for v in routers)
    assert "without the quantization config" in routers[0].reason
    patterns = [v for v in proposal.verdicts if v.source == "norm pattern"]
    assert len(patterns) == 4 and all(not v.accepted and v.code == "nothing" for v in patterns)
    assert proposal.after == ("lm_head",)


def test_glm45_list_reduces_to_lm_head_with_the_same_effect():
    report = check(EXAMPLES / "glm-4.5-fp8")
    proposal = propose(report, "conventional")
    assert len(proposal.before) == 838 and proposal.after == ("lm_head",)
    assert "R009" in codes(report) and "R009" not in {f.code for f in proposal.after_findings}
    before = {r.module.name: (r.scheme, r.ignored) for r in report.resolution.resolutions}
    after = {r.module.name: (r.scheme, r.ignored) for r in proposal.resolution.resolutions}
    assert before == after


def test_checkpoint_strategy_needs_headers():
    with pytest.raises(FixError, match="safetensors headers"):
        propose(check(EXAMPLES / "glm-4.5-fp8"), "checkpoint")
    result = invoke(["fix", str(EXAMPLES / "glm-4.5-fp8")])
    assert result.exit_code == 2


# --------------------------------------------------------------------------- writing


def test_write_keeps_orig_and_refuses_to_overwrite_it(dequantized_o_proj):
    cfg = dequantized_o_proj / "config.json"
    original = cfg.read_bytes()
    outcome = run_fix(dequantized_o_proj, write=True)
    assert outcome.written is not None and outcome.written.backup == cfg.with_name(
        "config.json.orig"
    )
    assert cfg.with_name("config.json.orig").read_bytes() == original
    assert json.loads(cfg.read_text())["quantization_config"]["ignore"] == [O_PROJ, "lm_head"]
    assert errors(check(dequantized_o_proj)) == []
    # No temporary files left behind.
    assert sorted(p.name for p in dequantized_o_proj.iterdir()) == [
        "config.json",
        "config.json.orig",
        "generation_config.json",
        "model.safetensors",
        "recipe.yaml",
    ]
    # A second fix has nothing to write; a changed config with an existing .orig is refused.
    set_ignore(dequantized_o_proj, ["lm_head"])
    with pytest.raises(FixError, match="already exists"):
        run_fix(dequantized_o_proj, write=True)
    run_fix(dequantized_o_proj, write=True, force=True)
    assert errors(check(dequantized_o_proj)) == []


def test_write_is_atomic(dequantized_o_proj, monkeypatch):
    """A failure at the final rename leaves config.json as it was and no temp file behind."""
    cfg = dequantized_o_proj / "config.json"
    original = cfg.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == cfg:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(WriteError, match="disk full"):
        run_fix(dequantized_o_proj, write=True)
    assert cfg.read_bytes() == original
    assert not [p for p in dequantized_o_proj.iterdir() if p.name.endswith(".tmp")]


def test_out_overlay_links_and_loads(dequantized_o_proj, tmp_path):
    out = tmp_path / "overlay"
    original = (dequantized_o_proj / "config.json").read_text()
    run_fix(dequantized_o_proj, out=out)
    assert (out / "config.json").is_file() and not (out / "config.json").is_symlink()
    for name in ("model.safetensors", "generation_config.json", "recipe.yaml"):
        link = out / name
        assert link.is_symlink()
        assert link.resolve() == (dequantized_o_proj / name).resolve()
    assert (dequantized_o_proj / "config.json").read_text() == original
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["ignore"] == [O_PROJ, "lm_head"]
    assert errors(check(out)) == []
    # A non-empty --out is refused without --force.
    with pytest.raises(FixError, match="not empty"):
        run_fix(dequantized_o_proj, out=out)
    run_fix(dequantized_o_proj, out=out, force=True)


# --------------------------------------------------------------------------- CLI and report


def test_cli_text_json_and_exit_codes(dequantized_o_proj, tmp_path):
    result = invoke(["fix", str(dequantized_o_proj)])
    assert result.exit_code == 0, result.output
    assert "K008 gone" in result.output and f'+      "{O_PROJ}",' in result.output
    result = invoke(["fix", str(dequantized_o_proj), "--format", "json"])
    data = json.loads(result.stdout)
    assert data["after_ignore"] == [O_PROJ, "lm_head"] and data["verified"]
    assert data["check_before"]["verdict"] == "fail" and data["check_after"]["verdict"] == "ok"
    assert {"code": "K008", "status": "gone"} in data["targeted"]
    result = invoke(["fix", str(dequantized_o_proj), "--write", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2


def test_markdown_action_plan(dequantized_o_proj, tmp_path):
    result = invoke(["check", str(dequantized_o_proj), "--format", "markdown"])
    text = result.stdout
    plan = text[text.index("## Recommended action plan") :]
    assert "Correct the ignore list in config.json (verified)" in plan
    assert f'"{O_PROJ}"' in plan and "resolves K008" in plan
    assert f"servecheck fix {dequantized_o_proj} --out" in plan
    router = broken.fp8_router_gate(broken.fixture("glm4moe-FP8_DYNAMIC"), tmp_path / "r")
    result = invoke(["check", str(router), "--format", "markdown"])
    plan = result.stdout[result.stdout.index("## Recommended action plan") :]
    assert "Re-quantize: config.json cannot fix these" in plan and "K012" in plan
    assert "servecheck fix" not in plan.split("Re-quantize")[1].split("Load test")[0]
