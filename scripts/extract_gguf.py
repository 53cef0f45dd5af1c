"""Extract what vLLM's GGUF loader accepts, per release, into knowledge/gguf.toml.

    python scripts/extract_gguf.py --transformers WHEEL_OR_DIR   # writes knowledge/gguf.toml
    python scripts/extract_gguf.py --transformers ... --check    # exit 1 if the file is stale

From each unpacked vLLM release (``scripts/vllm_sources.py``), with ``ast``:

- ``model_executor/layers/quantization/gguf.py``: the GGML type sets (UNQUANTIZED_TYPES,
  STANDARD_QUANT_TYPES, KQUANT_TYPES, IMATRIX_QUANT_TYPES and the DEQUANT / MMVQ / MMQ unions
  built from them), ``GGUFConfig.get_min_capability`` and whether
  ``get_supported_act_dtypes`` drops bfloat16 on capability 100 (Blackwell);
- whether ``model_executor/model_loader/gguf_loader.py`` exists (GGUF loads at all).

From the transformers release vLLM builds a GGUF model's config with (its
``integrations/ggml.py`` and ``models/auto/modeling_auto.py``, read with ``ast``): the
metadata key -> config key mapping per GGUF architecture (GGUF_CONFIG_MAPPING) and the
causal-LM class of each model_type (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), which vLLM 0.23
transformers_utils/config.py get_config sets as the architecture of a GGUF model.

From the ``gguf`` package (gguf-py, llama.cpp's Python reader; vLLM depends on it): the GGML
type ids, names, block sizes and bytes per block (GGMLQuantizationType, GGML_QUANT_SIZES).
"""

from __future__ import annotations

import argparse
import ast
import sys
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_quant_methods import _toml_value, merged, releases
from vllm_sources import CACHE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "servecheck" / "knowledge" / "gguf.toml"
GGUF_PY = "model_executor/layers/quantization/gguf.py"
LOADER = "model_executor/model_loader/gguf_loader.py"
SETS = ("UNQUANTIZED_TYPES", "STANDARD_QUANT_TYPES", "KQUANT_TYPES", "IMATRIX_QUANT_TYPES")
UNIONS = ("DEQUANT_TYPES", "MMVQ_QUANT_TYPES", "MMQ_QUANT_TYPES")


def _set_names(node: ast.AST, known: dict[str, list[str]]) -> list[str]:
    """A set literal of WeightType.X, or a union of names bound before."""
    if isinstance(node, ast.Set):
        return [e.attr for e in node.elts if isinstance(e, ast.Attribute)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _set_names(node.left, known), _set_names(node.right, known)
        return left + [n for n in right if n not in left]
    if isinstance(node, ast.Name):
        return list(known.get(node.id, []))
    return []


def release_row(vllm: Path) -> dict[str, Any] | None:
    path = vllm / GGUF_PY
    if not path.exists() or not (vllm / LOADER).exists():
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sets: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in SETS + UNIONS:
                sets[name] = _set_names(node.value, sets)
    cap, bf16_drop = None, False
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GGUFConfig"):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            src = ast.unparse(fn)
            if fn.name == "get_min_capability":
                ret = next(n for n in ast.walk(fn) if isinstance(n, ast.Return))
                cap = ret.value.value if isinstance(ret.value, ast.Constant) else None
            if fn.name == "get_supported_act_dtypes":
                bf16_drop = "has_device_capability(100)" in src
    return {
        "min_capability": cap,
        "bf16_blackwell": not bf16_drop,
        **{k.lower(): sorted(sets.get(k, [])) for k in SETS + UNIONS},
    }


def _literal_assign(tree: ast.Module, name: str) -> Any:
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            value = node.value
            if isinstance(value, ast.Call) and value.args:  # OrderedDict([...])
                value = value.args[0]
            return ast.literal_eval(value)
    raise LookupError(name)


def _read(root: Path, rel: str) -> str:
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            return zf.read(rel).decode("utf-8")
    return (root / rel).read_text(encoding="utf-8")


def transformers_tables(root: Path) -> tuple[str, dict, dict[str, str]]:
    ggml = ast.parse(_read(root, "transformers/integrations/ggml.py"))
    auto = ast.parse(_read(root, "transformers/models/auto/modeling_auto.py"))
    mapping = _literal_assign(ggml, "GGUF_CONFIG_MAPPING")
    causal = dict(_literal_assign(auto, "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"))
    version = "unknown"
    for name in ("transformers/__init__.py",):
        for line in _read(root, name).splitlines():
            if line.startswith("__version__"):
                version = line.split("=")[1].strip().strip("\"'")
    return version, mapping, causal


def ggml_types() -> list[tuple[int, str, int, int]]:
    import gguf  # the gguf package (pip install gguf)

    sizes = gguf.GGML_QUANT_SIZES
    return [(int(t), t.name, *sizes[t]) for t in gguf.GGMLQuantizationType if t in sizes]


def render(per_release: dict[str, Any], tf: tuple[str, dict, dict[str, str]]) -> str:
    from importlib.metadata import version

    tf_version, mapping, causal = tf
    lines = [
        "# What vLLM's GGUF loader accepts, per release. Generated by scripts/extract_gguf.py",
        "# from the releases' sources, the transformers release named below and the gguf",
        "# package; do not edit.",
        "#",
        "# [[release]]: vLLM releases since..until with model_loader/gguf_loader.py; their",
        "# quantization/gguf.py GGML type sets (names of GGMLQuantizationType), the minimum",
        "# capability and whether bfloat16 stays allowed on sm_100+ (get_supported_act_dtypes).",
        "# Linear/embedding layers accept unquantized + dequant types (else ValueError at load);",
        "# MoE layers run MMQ types (ggml_moe_a8), MMVQ types (ggml_moe_a8_vec), else a slow",
        "# per-token path over fused_mul_mat_gguf.",
        "# [type] NAME: GGML type id, elements per block, bytes per block (gguf package "
        f"{version('gguf')} GGML_QUANT_SIZES).",
        "# [arch.NAME]: GGUF general.architecture -> transformers config keys "
        f"(transformers {tf_version} integrations/ggml.py GGUF_CONFIG_MAPPING) and the",
        "# causal-LM class of its model_type (models/auto/modeling_auto.py).",
        "",
        f'transformers = "{tf_version}"',
        "",
    ]
    for row in merged(per_release):
        if row["value"] is None:
            continue
        lines += ["[[release]]", f'since = "{row["since"]}"', f'until = "{row["until"]}"']
        lines += [f"{k} = {_toml_value(v)}" for k, v in row["value"].items() if v is not None]
        lines.append("")
    lines.append("[type]")
    for tid, name, block, size in ggml_types():
        lines.append(f"{name} = {{ id = {tid}, block = {block}, bytes = {size} }}")
    lines.append("")
    for arch, keys in mapping.items():
        if arch in ("general", "tokenizer", "tokenizer_config") or not isinstance(keys, dict):
            continue
        # modeling_gguf_pytorch_utils.py load_gguf_checkpoint: Gemma 3/4 GGUF files hold the
        # text backbone only (model_type gemma3_text / gemma4_text)
        model_type = f"{arch}_text" if arch in ("gemma3", "gemma4") else arch
        lines.append(f"[arch.{_key(arch)}]")
        lines.append(f"model_type = {_toml_value(model_type)}")
        lines.append(f"causal_lm = {_toml_value(causal.get(model_type, ''))}")
        fields = {k: v for k, v in keys.items() if isinstance(v, str)}
        lines.append("keys = { " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in
                                              fields.items()) + " }")  # fmt: skip
        lines.append("")
    lines += [
        "# [names]: the GGUF tensor each vLLM module (its checkpoint leaf name) is read from:",
        "# llama.cpp's names (gguf-py constants.py TENSOR_NAMES; vLLM's gguf_loader.py maps",
        "# through gguf.get_tensor_name_map). {L} is the layer index.",
        "[names]",
        *(f"{_key(k)} = {_toml_value(v)}" for k, v in TENSOR_NAMES.items()),
        "",
    ]
    return "\n".join(lines)


# gguf-py constants.py MODEL_TENSOR -> TENSOR_NAMES for the modules vLLM quantizes
TENSOR_NAMES = {
    "embed_tokens": "token_embd",
    "lm_head": "output",
    "q_proj": "blk.{L}.attn_q",
    "k_proj": "blk.{L}.attn_k",
    "v_proj": "blk.{L}.attn_v",
    "qkv_proj": "blk.{L}.attn_qkv",
    "o_proj": "blk.{L}.attn_output",
    "gate_proj": "blk.{L}.ffn_gate",
    "up_proj": "blk.{L}.ffn_up",
    "down_proj": "blk.{L}.ffn_down",
    "experts.gate_proj": "blk.{L}.ffn_gate_exps",
    "experts.up_proj": "blk.{L}.ffn_up_exps",
    "experts.down_proj": "blk.{L}.ffn_down_exps",
    "gate": "blk.{L}.ffn_gate_inp",
    "shared_expert.gate_proj": "blk.{L}.ffn_gate_shexp",
    "shared_expert.up_proj": "blk.{L}.ffn_up_shexp",
    "shared_expert.down_proj": "blk.{L}.ffn_down_shexp",
    "shared_expert_gate": "blk.{L}.ffn_gate_inp_shexp",
}


def _key(k: str) -> str:
    return k if k.replace("_", "").isalnum() else _toml_value(k)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformers", type=Path, required=True, help="wheel or source dir")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    per_release = {v: release_row(CACHE / v / "vllm") for v in releases()}
    text = render(per_release, transformers_tables(args.transformers))
    if args.check:
        return 0 if OUT.exists() and OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
