"""Extract how each vLLM release derives the model's maximum length (no vllm import).

    python scripts/extract_vllm_max_len.py            # every unpacked release -> the table

Reads `_get_and_verify_max_len` and `get_and_verify_max_len` (`config.py` or `config/model.py`)
and, from 0.14, `derive_max_model_len_and_key` (transformers_utils/model_arch_config_convertor.py)
of each release under `scripts/vllm_sources.py`'s cache, and writes
`src/servecheck/knowledge/vllm_max_len.toml`: one [[rule]] row per distinct behaviour with the
releases (`from`, `to`, inclusive) that share it.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_vllm_args import ranges, releases, to_toml
from vllm_sources import CACHE

OUT = Path(__file__).resolve().parent.parent / "src/servecheck/knowledge/vllm_max_len.toml"


def _function(path: Path, name: str) -> ast.FunctionDef | None:
    if not path.exists():
        return None
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


SLIDING_ROPE_TEXT = "Disabling sliding window is not supported for models with rope_scaling"


def extract(version: str) -> dict[str, Any]:
    root = CACHE / version / "vllm"
    model_py = next(
        p
        for p in (root / "config/model.py", root / "config/__init__.py", root / "config.py")
        if _function(p, "_get_and_verify_max_len") is not None
    )
    verify = _function(model_py, "_get_and_verify_max_len")
    outer = _function(model_py, "get_and_verify_max_len")
    if verify is None or outer is None:
        raise LookupError(f"{version}: _get_and_verify_max_len not found")
    derive = _function(
        root / "transformers_utils/model_arch_config_convertor.py", "derive_max_model_len_and_key"
    )
    keys_from = derive if derive is not None else verify
    possible = next(
        n
        for n in ast.walk(keys_from)
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "possible_keys"
    )
    unscaled: list[str] = []
    for node in ast.walk(verify):
        if (
            isinstance(node, ast.Compare)
            and ast.unparse(node.left) == "rope_type"
            and isinstance(node.ops[0], ast.NotIn)
            and isinstance(node.comparators[0], ast.Tuple)
        ):
            unscaled = [e.value for e in node.comparators[0].elts]
    text = ast.unparse(verify)
    skip_types = [
        n.left.value
        for n in ast.walk(verify)
        if isinstance(n, ast.Compare)
        and isinstance(n.left, ast.Constant)
        and isinstance(n.ops[0], ast.NotIn)
        and "model_type" in ast.unparse(n.comparators[0])
    ]
    return {
        "possible_keys": [e.value for e in possible.value.elts],
        "model_max_length_wins": "tmp_max_len" in ast.unparse(keys_from),
        "unscaled_rope_types": unscaled,
        "yarn_from_original": "rope_type == 'yarn'" in text
        and "original_max_position_embeddings" in text,
        "longrope_defaults_to_original": "'longrope' for rp in" in text or "== 'longrope'" in text,
        "skip_scaling_model_types": skip_types,
        "auto_value": "max_model_len == -1" in text,
        "sliding_window_with_rope_raises": SLIDING_ROPE_TEXT in text,
        "tokenizer_config_pooling_only": "pooling" in _strings(outer),
    }


def main() -> None:
    per = {v: [extract(v)] for v in releases()}
    rows = ranges(per)
    lines = [
        "# How each vLLM release derives the model's maximum length (max_model_len), extracted",
        "# from the released wheels by scripts/extract_vllm_max_len.py (_get_and_verify_max_len,",
        "# derive_max_model_len_and_key). Generated: do not edit by hand; re-run the script.",
        "#",
        "# possible_keys                 config keys read; the smallest present wins",
        "# model_max_length_wins         a config `model_max_length` replaces that (Command-R)",
        "# unscaled_rope_types           RoPE types whose factor is NOT applied to the length",
        "# yarn_from_original            YaRN: length = original_max_position_embeddings x factor",
        "# longrope_defaults_to_original without --max-model-len, LongRoPE takes the original",
        "# skip_scaling_model_types      model types never scaled (e.g. gemma3)",
        "# auto_value                    --max-model-len -1 / auto: fit to the memory left",
        "# sliding_window_with_rope_raises --disable-sliding-window with RoPE scaling raises",
        "# tokenizer_config_pooling_only tokenizer_config.json's model_max_length is read only for",
        "#                               pooling models with absolute position embeddings",
        "",
    ]
    for row in rows:
        lines.append("[[rule]]")
        lines += [f"{k} = {to_toml(v)}" for k, v in row.items()]
        lines.append("")
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}: {len(rows)} rows", file=sys.stderr)
    for row in rows:
        print(
            row["from"],
            row["to"],
            json.dumps({k: v for k, v in row.items() if k not in ("from", "to", "possible_keys")}),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
