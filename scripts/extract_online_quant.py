"""Extract, per vLLM release, which methods quantize an unquantized checkpoint while it loads.

    python scripts/extract_online_quant.py            # writes knowledge/online_quant.toml
    python scripts/extract_online_quant.py --check    # exit 1 if the committed file is stale

For each unpacked release (``scripts/vllm_sources.py``) it reads, with ``ast``:

- ``quantization/fp8.py`` ``Fp8Config.get_quant_method``: the linear and MoE method classes
  built when the checkpoint is not FP8-serialized (``--quantization fp8`` on a 16-bit
  checkpoint), and whether ``Fp8Config.__init__`` refuses that case (the loader then hands the
  release's ``fp8_per_tensor`` online config over, logging the deprecation);
- ``quantization/online/base.py`` ``OnlineQuantizationConfig`` with
  ``config/quantization.py``: for every online shorthand (``fp8_per_tensor``,
  ``fp8_per_block``, ``fp8_per_channel``, ``mxfp8``, ``int8_per_channel_weight_only`` ...)
  the linear and MoE method classes (the if/elif chain of older releases or the
  ``_ONLINE_SHORTHANDS`` / ``_ONLINE_*_METHODS`` tables of newer ones); an empty class means
  the layer stays unquantized.

Consecutive releases with equal values are merged into one row ``since``/``until``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_quant_methods import _toml_value, merged, releases
from vllm_sources import CACHE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "servecheck" / "knowledge" / "online_quant.toml"
QDIR = "model_executor/layers/quantization"
MOE_CLASSES = ("FusedMoE", "RoutedExperts")


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None


def _class(tree: ast.Module | None, name: str) -> ast.ClassDef | None:
    if tree is None:
        return None
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _method(cls: ast.ClassDef | None, name: str) -> ast.FunctionDef | None:
    if cls is None:
        return None
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def _method_calls(nodes: list[ast.stmt]) -> list[str]:
    """Quant-method classes constructed in these statements, in order."""
    out = []
    for stmt in nodes:
        for n in ast.walk(stmt):
            name = _call_name(n)
            if name and name.endswith(("Method", "MoE")) and not name.startswith("get_"):
                out.append(name)
    return out


def _isinstance_of(test: ast.expr) -> set[str]:
    names: set[str] = set()
    if isinstance(test, ast.Call) and _call_name(test) == "isinstance" and len(test.args) == 2:
        arg = test.args[1]
        for n in ast.walk(arg):
            if isinstance(n, ast.Name):
                names.add(n.id)
    return names


def _branches(fn: ast.FunctionDef) -> dict[str, list[ast.stmt]]:
    """The body of the `isinstance(layer, LinearBase)` and MoE branches of get_quant_method."""
    out: dict[str, list[ast.stmt]] = {}
    for node in ast.walk(fn):
        if not isinstance(node, ast.If):
            continue
        names = _isinstance_of(node.test)
        if "LinearBase" in names and "linear" not in out:
            out["linear"] = node.body
        elif names & set(MOE_CLASSES) and "moe" not in out:
            out["moe"] = node.body
    return out


def _mentions(node: ast.AST, text: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == text for n in ast.walk(node)) or any(
        isinstance(n, ast.Name) and n.id == text for n in ast.walk(node)
    )


def _online_in(body: list[ast.stmt]) -> str:
    """The class built for a not-serialized checkpoint inside one branch."""
    for node in body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.If) and _mentions(sub.test, "is_checkpoint_fp8_serialized"):
                negated = isinstance(sub.test, ast.UnaryOp) and isinstance(sub.test.op, ast.Not)
                online = sub.body if negated else sub.orelse
                calls = _method_calls(online)
                if calls:
                    return calls[-1]
    calls = [c for c in _method_calls(body) if not c.startswith("Unquantized")]
    calls = [c for c in calls if c != "Mxfp4MoEMethod"]
    return calls[-1] if calls else ""


def fp8_online(vllm: Path) -> dict[str, Any]:
    """`--quantization fp8` on a 16-bit checkpoint in one release."""
    tree = _parse(vllm / QDIR / "fp8.py")
    cls = _class(tree, "Fp8Config")
    init = _method(cls, "__init__")
    refuses = init is not None and any(
        isinstance(n, ast.If)
        and _mentions(n.test, "is_checkpoint_fp8_serialized")
        and any(isinstance(s, ast.Raise) for s in n.body)
        for n in init.body  # top level: a block-size check nested deeper is another rule
    )
    if refuses:
        shorthand = online_shorthands(vllm).get("fp8_per_tensor", {})
        return {
            "redirect": "fp8_per_tensor",
            "linear": shorthand.get("linear", ""),
            "moe": shorthand.get("moe", ""),
        }
    fn = _method(cls, "get_quant_method")
    branches = _branches(fn) if fn else {}
    return {
        "redirect": "",
        "linear": _online_in(branches.get("linear", [])),
        "moe": _online_in(branches.get("moe", [])),
    }


def _enum_values(tree: ast.Module | None, name: str) -> dict[str, str]:
    cls = _class(tree, name)
    out: dict[str, str] = {}
    for stmt in cls.body if cls else []:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
            out[stmt.targets[0].id] = stmt.value.value  # type: ignore[attr-defined]
    return out


def _dict_assign(tree: ast.Module | None, name: str) -> ast.Dict | None:
    for stmt in tree.body if tree else []:
        target = None
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            target, value = stmt.target.id, stmt.value
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        if target == name and isinstance(value, ast.Dict):
            return value
    return None


def _key_name(node: ast.AST | None) -> str:
    return node.id if isinstance(node, ast.Name) else ""


def _class_table(d: ast.Dict | None) -> dict[str, str]:
    if d is None:
        return {}
    return {_key_name(k): _key_name(v) for k, v in zip(d.keys, d.values, strict=True)}


def _chain(body: list[ast.stmt], enum: dict[str, str]) -> dict[str, str]:
    """An if/elif chain on OnlineQuantScheme members: scheme value -> class ('' = default)."""
    out: dict[str, str] = {}
    for node in body:
        if not isinstance(node, ast.If):
            continue
        cur: ast.stmt | None = node
        while isinstance(cur, ast.If):
            members = [
                n.attr
                for n in ast.walk(cur.test)
                if isinstance(n, ast.Attribute) and n.attr in enum
            ]
            if not members:
                break
            calls = [c for c in _method_calls(cur.body) if c != "UnquantizedLinearMethod"]
            for m in members:
                out[enum[m]] = calls[-1] if calls else ""
            rest = cur.orelse
            if len(rest) == 1 and isinstance(rest[0], ast.If):
                cur = rest[0]
            else:
                calls = _method_calls(rest)
                out["*"] = calls[-1] if calls else ""
                cur = None
        if out:
            return out
    return out


def online_shorthands(vllm: Path) -> dict[str, dict[str, str]]:
    """Online shorthand -> {linear, moe} method classes ('' = left unquantized)."""
    qcfg = _parse(vllm / "config" / "quantization.py")
    base = _parse(vllm / QDIR / "online" / "base.py")
    if base is None or qcfg is None:
        return {}
    table = _dict_assign(qcfg, "_ONLINE_SHORTHANDS")
    if table is not None:
        linear = _dict_assign(base, "_ONLINE_LINEAR_METHODS")
        moe = _dict_assign(base, "_ONLINE_MOE_METHODS")
        by_key = {part: _class_table(d) for part, d in (("linear", linear), ("moe", moe))}
        out: dict[str, dict[str, str]] = {}
        for k, v in zip(table.keys, table.values, strict=True):
            if not isinstance(k, ast.Constant) or not isinstance(v, ast.Call):
                continue
            row = {}
            for kw in v.keywords:
                if kw.arg in ("linear", "moe") and isinstance(kw.value, ast.Call):
                    weight = next((w.value for w in kw.value.keywords if w.arg == "weight"), None)
                    row[kw.arg] = by_key[kw.arg].get(_key_name(weight), "")
            out[str(k.value)] = {"linear": row.get("linear", ""), "moe": row.get("moe", "")}
        return out
    enum = _enum_values(qcfg, "OnlineQuantScheme")
    cls = _class(base, "OnlineQuantizationConfig")
    fn = _method(cls, "get_quant_method")
    if not enum or fn is None:
        return {}
    branches = _branches(fn)
    lin = _chain(branches.get("linear", []), enum)
    moe = _chain(branches.get("moe", []), enum)
    return {
        v: {"linear": lin.get(v, lin.get("*", "")), "moe": moe.get(v, moe.get("*", ""))}
        for v in enum.values()
    }


def render(data: dict[str, dict[str, Any]]) -> str:
    vers = list(data)
    lines = [
        "# Quantization applied while an unquantized checkpoint loads, per vLLM release.",
        "# Generated by scripts/extract_online_quant.py from the releases' sources; do not edit.",
        "#",
        "# [[fp8]]: `--quantization fp8` on a 16-bit checkpoint: the linear and MoE method",
        "# classes fp8.py Fp8Config.get_quant_method builds when the checkpoint is not",
        "# FP8-serialized; `redirect` names the online shorthand the loader uses instead where",
        "# Fp8Config refuses online quantization (model_loader/weight_utils.py get_quant_config).",
        "# [[online.NAME]]: the online shorthand NAME (quantization/online/base.py",
        "# OnlineQuantizationConfig): linear and MoE method classes, '' = left unquantized.",
        "",
        f"releases = {_toml_value(vers)}",
        "",
    ]
    for row in merged({v: data[v]["fp8"] for v in vers}):
        lines += ["[[fp8]]", f'since = "{row["since"]}"', f'until = "{row["until"]}"']
        lines += [f"{k} = {_toml_value(row['value'][k])}" for k in ("linear", "moe", "redirect")]
        lines.append("")
    names = sorted({n for d in data.values() for n in d["online"]})
    for name in names:
        for row in merged({v: data[v]["online"].get(name) for v in vers}):
            if row["value"] is None:
                continue
            lines += [f'[[online."{name}"]]', f'since = "{row["since"]}"']
            lines.append(f'until = "{row["until"]}"')
            lines += [f"{k} = {_toml_value(row['value'][k])}" for k in ("linear", "moe")]
            lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    args = ap.parse_args()
    data = {
        v: {"fp8": fp8_online(CACHE / v / "vllm"), "online": online_shorthands(CACHE / v / "vllm")}
        for v in releases()
    }
    text = render(data)
    if args.check:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data)} releases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
