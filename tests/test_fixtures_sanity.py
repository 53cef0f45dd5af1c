"""The committed fixtures match their manifest, and broken.py builds what it documents.

No torch needed: everything here reads bytes with the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

import pytest

from fixtures import broken

CKPTS = broken.FIXTURES
MANIFEST = json.loads((CKPTS / "MANIFEST.json").read_text())["checkpoints"]
CHECKPOINT_FILES = {"config.json", "generation_config.json", "model.safetensors", "recipe.yaml"}
# tests/fixtures/make_formats.py: checkpoints made by other formats' own tools
FORMATS = json.loads((CKPTS / "MANIFEST-formats.json").read_text())
# tests/fixtures/make_arch.py: layouts beyond plain decoders (sliding, Mamba, linear attn, VL)
FORMATS |= json.loads((CKPTS / "MANIFEST-arch.json").read_text())


def test_manifest_lists_every_checkpoint_folder() -> None:
    on_disk = {p.name for p in CKPTS.iterdir() if p.is_dir()}
    assert on_disk == set(MANIFEST) | set(FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_formats_manifest_sha256(name: str) -> None:
    folder = CKPTS / name
    files = FORMATS[name]["files"]
    assert {p.name for p in folder.iterdir()} == set(files)
    for fname, meta in files.items():
        data = (folder / fname).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], fname


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_manifest_sha256_and_size(name: str) -> None:
    entry = MANIFEST[name]
    folder = CKPTS / name
    assert {p.name for p in folder.iterdir()} == set(entry["files"])
    assert set(entry["files"]) <= CHECKPOINT_FILES  # no tokenizer copies
    for fname, meta in entry["files"].items():
        data = (folder / fname).read_bytes()
        assert len(data) == meta["size"], fname
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], fname


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_checkpoint_is_what_manifest_says(name: str) -> None:
    entry = MANIFEST[name]
    cfg = json.loads((CKPTS / name / "config.json").read_text())
    header = broken.read_header(CKPTS / name / "model.safetensors")
    qc = cfg.get("quantization_config")
    if entry["scheme"] == "bf16":
        assert qc is None and entry["ignore"] is None
        assert "recipe.yaml" not in entry["files"]
    else:
        assert qc["quant_method"] == "compressed-tensors"
        assert qc["quantization_status"] == "compressed"
        assert qc["version"] == entry["versions"]["compressed-tensors"]
        recipe = (CKPTS / name / "recipe.yaml").read_text()
        assert f"scheme: {entry['scheme']}" in recipe
        assert ("mlp.gate$" in recipe) == name.endswith("-igngate")
    # Every tensor's byte range matches its dtype and shape.
    for tname, t in header.items():
        if tname == "__metadata__":
            continue
        if t["dtype"] in broken.DTYPE_SIZE:
            begin, end = t["data_offsets"]
            assert end - begin == broken.tensor_nbytes(t["dtype"], t["shape"]), tname


def test_igngate_variants_equal_their_base() -> None:
    """With transformers 5 the MoE router is not an nn.Linear, so the extra ignore entry
    changes only recipe.yaml (fixtures README, 'router gate')."""
    pairs = [n for n in MANIFEST if n.endswith("-igngate")]
    assert pairs
    for name in pairs:
        base = MANIFEST[name.removesuffix("-igngate")]["files"]
        files = MANIFEST[name]["files"]
        for fname in ("model.safetensors", "config.json"):
            assert files[fname]["sha256"] == base[fname]["sha256"], (name, fname)
        assert files["recipe.yaml"]["sha256"] != base["recipe.yaml"]["sha256"]


def test_tokenizer_vocab_matches_models() -> None:
    tok = json.loads((broken.TOKENIZER / "tokenizer.json").read_text())
    n = len(tok["model"]["vocab"])
    for name in MANIFEST:
        cfg = json.loads((CKPTS / name / "config.json").read_text())
        assert cfg["vocab_size"] == n


# --------------------------------------------------------------------------- generic helpers


def test_write_read_roundtrip(tmp_path: Path) -> None:
    tensors = {
        "b": ("BF16", [2, 3], broken.bf16_encode([0.5, -1.0, 2.0, 0.0, 3.5, -0.25])),
        "a": ("I64", [2], struct.pack("<2q", 7, -7)),
        "c": ("F8_E4M3", [3], broken.e4m3_encode([1.0, -448.0, 0.015625])),
    }
    path = tmp_path / "x.safetensors"
    broken.write_safetensors(path, tensors, {"format": "pt"})
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert n % 8 == 0
    assert broken.read_header(path)["__metadata__"] == {"format": "pt"}
    back, meta = broken.read_tensors(path)
    assert back == tensors and meta == {"format": "pt"}
    assert broken.bf16_decode(back["b"][2]) == [0.5, -1.0, 2.0, 0.0, 3.5, -0.25]
    assert broken.e4m3_decode(back["c"][2]) == [1.0, -448.0, 0.015625]
    with pytest.raises(ValueError):
        broken.write_safetensors(path, {"x": ("BF16", [3], b"\0\0")})


def test_committed_file_survives_rewrite(tmp_path: Path) -> None:
    """Every tensor (name, dtype, shape, bytes) and the metadata survive a rewrite. The file
    is not byte-identical: the safetensors package orders data by alignment, we by name."""
    src = broken.fixture("llama-W4A16") / "model.safetensors"
    tensors, meta = broken.read_tensors(src)
    broken.write_safetensors(tmp_path / "m.safetensors", tensors, meta)
    assert broken.read_tensors(tmp_path / "m.safetensors") == (tensors, meta)


# --------------------------------------------------------------------------- broken variants


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return broken.build_all(tmp_path_factory.mktemp("broken"))


def _tensors(path: Path) -> dict[str, broken.Tensor]:
    return broken.read_tensors(path / "model.safetensors")[0]


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_a_missing_weight_scale(built: dict[str, Path]) -> None:
    src = _tensors(broken.fixture("llama-FP8_DYNAMIC"))
    got = _tensors(built["missing_weight_scale"])
    assert set(src) - set(got) == {"model.layers.0.self_attn.k_proj.weight_scale"}
    assert got["model.layers.0.self_attn.k_proj.weight"][0] == "F8_E4M3"
    assert _config(built["missing_weight_scale"]) == _config(broken.fixture("llama-FP8_DYNAMIC"))


def test_b_fp8_router_gate(built: dict[str, Path]) -> None:
    src_dir = broken.fixture("glm4moe-FP8_DYNAMIC")
    src, got = _tensors(src_dir), _tensors(built["fp8_router_gate"])
    gates = [n for n in src if n.endswith(".mlp.gate.weight")]
    assert gates == ["model.layers.1.mlp.gate.weight"]
    for g in gates:
        experts, hidden = src[g][1]
        assert got[g][:2] == ("F8_E4M3", [experts, hidden])
        scale_name = g.removesuffix("weight") + "weight_scale"
        assert got[scale_name][:2] == ("BF16", [experts, 1])
        bias = g.removesuffix("weight") + "e_score_correction_bias"
        assert got[bias] == src[bias] and got[bias][0] == "F32"
        # Dequantized values are close to the original bf16 router.
        orig = broken.bf16_decode(src[g][2])
        scales = broken.bf16_decode(got[scale_name][2])
        deq = broken.e4m3_decode(got[g][2])
        for i, (o, q) in enumerate(zip(orig, deq, strict=True)):
            s = scales[i // hidden]
            assert math.isclose(o, q * s, rel_tol=0.07, abs_tol=s * 2**-9), (i, o, q * s)
    qc_src = _config(src_dir)["quantization_config"]["ignore"]
    qc_got = _config(built["fp8_router_gate"])["quantization_config"]["ignore"]
    assert "model.layers.1.mlp.gate" in qc_src
    assert qc_got == [m for m in qc_src if not m.endswith("mlp.gate")]


def test_b_keep_ignore_option(tmp_path: Path) -> None:
    src = broken.fixture("glm4moe-FP8_DYNAMIC")
    out = broken.fp8_router_gate(src, tmp_path / "g", drop_from_ignore=False)
    assert _config(out) == _config(src)
    assert _tensors(out)["model.layers.1.mlp.gate.weight"][0] == "F8_E4M3"


def test_c_drop_last_layer(built: dict[str, Path]) -> None:
    cfg = _config(built["drop_last_layer"])
    names = _tensors(built["drop_last_layer"])
    last = cfg["num_hidden_layers"] - 1
    assert not [n for n in names if n.startswith(f"model.layers.{last}.")]
    src = _tensors(broken.fixture("glm4moe-FP8_DYNAMIC"))
    assert {n for n in src if not n.startswith(f"model.layers.{last}.")} == set(names)
    assert cfg == _config(broken.fixture("glm4moe-FP8_DYNAMIC"))


def test_d_dequantized_module(built: dict[str, Path]) -> None:
    src = _tensors(broken.fixture("llama-FP8_DYNAMIC"))
    got = _tensors(built["dequantized_module"])
    m = "model.layers.0.self_attn.q_proj"
    assert got[f"{m}.weight"][:2] == ("BF16", src[f"{m}.weight"][1])
    assert f"{m}.weight_scale" not in got
    assert set(src) - set(got) == {f"{m}.weight_scale"}
    # Values are fp8 x per-row scale.
    rows, cols = src[f"{m}.weight"][1]
    scale = broken.bf16_decode(src[f"{m}.weight_scale"][2])
    q = broken.e4m3_decode(src[f"{m}.weight"][2])
    vals = broken.bf16_decode(got[f"{m}.weight"][2])
    for i in range(0, rows * cols, 97):
        assert math.isclose(vals[i], q[i] * scale[i // cols], rel_tol=2**-8)


def test_e_ignore_only_q_proj(built: dict[str, Path], tmp_path: Path) -> None:
    src = broken.fixture("llama-FP8_DYNAMIC")
    ign = _config(built["ignore_only_q_proj"])["quantization_config"]["ignore"]
    assert ign == ["lm_head", "model.layers.0.self_attn.q_proj"]
    assert _tensors(built["ignore_only_q_proj"]) == _tensors(src)
    out = broken.ignore_only_q_proj(src, tmp_path / "e", tensors_too=True)
    assert _tensors(out)["model.layers.0.self_attn.q_proj.weight"][0] == "BF16"
    assert _tensors(out)["model.layers.0.self_attn.k_proj.weight"][0] == "F8_E4M3"


def test_f_truncated_header(built: dict[str, Path]) -> None:
    path = built["truncated_header"] / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert len(data) < 8 + n
    with pytest.raises(ValueError, match="header declares"):
        broken.read_header(path)


def test_g_index_missing_shard(built: dict[str, Path]) -> None:
    d = built["index_missing_shard"]
    index = json.loads((d / broken.INDEX_NAME).read_text())
    files = set(index["weight_map"].values())
    assert files == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert (d / "model-00001-of-00002.safetensors").exists()
    assert not (d / "model-00002-of-00002.safetensors").exists()
    assert not (d / "model.safetensors").exists()


def test_g_valid_sharding_is_consistent(tmp_path: Path) -> None:
    src = broken.fixture("llama-bf16")
    weight_map = broken.shard_checkpoint(src, tmp_path / "s", 3)
    seen: dict[str, str] = {}
    total = 0
    for f in sorted(set(weight_map.values())):
        for name, t in broken.read_tensors(tmp_path / "s" / f)[0].items():
            seen[name] = f
            total += len(t[2])
    assert seen == weight_map
    assert set(seen) == set(_tensors(src))
    index = json.loads((tmp_path / "s" / broken.INDEX_NAME).read_text())
    assert index["metadata"]["total_size"] == total


def test_g_index_bad_weight_map(tmp_path: Path) -> None:
    d, moved = broken.index_bad_weight_map(broken.fixture("llama-bf16"), tmp_path / "g")
    weight_map = json.loads((d / broken.INDEX_NAME).read_text())["weight_map"]
    actual: dict[str, str] = {}
    for f in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        actual.update(dict.fromkeys(broken.read_tensors(d / f)[0], f))
    assert broken.UNLISTED_TENSOR in actual and broken.UNLISTED_TENSOR not in weight_map
    assert broken.PHANTOM_TENSOR in weight_map and broken.PHANTOM_TENSOR not in actual
    assert actual[moved] == "model-00002-of-00002.safetensors"
    assert weight_map[moved] == "model-00001-of-00002.safetensors"
    wrong = {n for n in weight_map if n in actual and weight_map[n] != actual[n]}
    assert wrong == {moved}
