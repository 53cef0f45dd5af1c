"""Extract vLLM's quantization-method registry from every unpacked release.

    python scripts/extract_quant_methods.py            # writes knowledge/quant_methods.toml
    python scripts/extract_quant_methods.py --check    # exit 1 if the committed file is stale

For each release (``scripts/vllm_sources.py --list``) it reads, with ``ast`` and never by
importing vllm:

- ``model_executor/layers/quantization/__init__.py``: the method names (``QuantizationMethods``),
  the deprecated ones, and ``get_quantization_config``'s method -> config class map;
- each config class (following base classes inside the quantization package): the constant
  ``get_min_capability()`` returns, the activation dtypes of ``get_supported_act_dtypes()``,
  and whether it defines ``override_quantization_method``;
- ``config/model.py`` (``config.py`` in old releases) ``_verify_quantization``: the order in
  which override methods are probed;
- ``platforms/cpu.py``: the CPU platform's allow-list, when it has one.

Consecutive releases with identical values are merged into one row ``since``/``until``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_sources import CACHE, version_key

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "servecheck" / "knowledge" / "quant_methods.toml"
QDIR = "model_executor/layers/quantization"
DTYPES = {
    "half": "float16",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float": "float32",
    "float32": "float32",
    "float8_e4m3fn": "float8_e4m3fn",
}


def releases() -> list[str]:
    return sorted(
        (p.name for p in CACHE.iterdir() if (p / "vllm" / "__init__.py").exists()),
        key=version_key,
    )


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


class Package:
    """One release's quantization package: classes by name, found by following imports."""

    def __init__(self, vllm: Path):
        self.vllm = vllm
        self.qdir = vllm / QDIR
        self._modules: dict[Path, ast.Module | None] = {}

    def module(self, path: Path) -> ast.Module | None:
        if path not in self._modules:
            self._modules[path] = _parse(path)
        return self._modules[path]

    def resolve_import(self, here: Path, node: ast.ImportFrom) -> Path | None:
        if node.level:
            base = here.parent
            for _ in range(node.level - 1):
                base = base.parent
            parts = (node.module or "").split(".") if node.module else []
        else:
            if not (node.module or "").startswith("vllm."):
                return None
            base = self.vllm.parent
            parts = node.module.split(".")  # type: ignore[union-attr]
        target = base.joinpath(*parts)
        if target.with_suffix(".py").exists():
            return target.with_suffix(".py")
        if (target / "__init__.py").exists():
            return target / "__init__.py"
        return None

    def find_class(self, name: str, here: Path, depth: int = 0) -> tuple[ast.ClassDef, Path] | None:
        tree = self.module(here)
        if tree is None or depth > 6:
            return None
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node, here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(
                (a.asname or a.name) == name for a in node.names
            ):
                src = self.resolve_import(here, node)
                real = next(a.name for a in node.names if (a.asname or a.name) == name)
                if src is not None:
                    found = self.find_class(real, src, depth + 1)
                    if found:
                        return found
        return None

    def method(self, cls: str, here: Path, meth: str) -> tuple[ast.FunctionDef, Path] | None:
        """The definition of ``meth`` on ``cls`` or its nearest base class that has one."""
        found = self.find_class(cls, here)
        if found is None:
            return None
        node, path = found
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == meth:
                return item, path
        for base in node.bases:
            bname = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            if bname and bname != "QuantizationConfig":
                got = self.method(bname, path, meth)
                if got:
                    return got
        return None


def _returned(fn: ast.FunctionDef) -> ast.expr | None:
    for node in ast.walk(fn):
        if isinstance(node, ast.Return) and node.value is not None:
            return node.value
    return None


def min_capability(pkg: Package, cls: str, here: Path) -> int | str | None:
    got = pkg.method(cls, here, "get_min_capability")
    if got is None:
        return None
    value = _returned(got[0])
    try:
        return int(ast.literal_eval(value))  # type: ignore[arg-type]
    except (ValueError, TypeError, SyntaxError):
        # e.g. `return OtherConfig.get_min_capability()`
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and isinstance(value.func.value, ast.Name)
        ):
            return min_capability(pkg, value.func.value.id, got[1])
        return ast.unparse(value) if value is not None else None


def act_dtypes(pkg: Package, cls: str, here: Path) -> list[str] | None:
    got = pkg.method(cls, here, "get_supported_act_dtypes")
    if got is None:
        return None
    value = _returned(got[0])
    if not isinstance(value, (ast.List, ast.Tuple)):
        return None
    out = []
    for elt in value.elts:
        attr = elt.attr if isinstance(elt, ast.Attribute) else None
        if attr in DTYPES:
            out.append(DTYPES[attr])
    return out


def has_override(pkg: Package, cls: str, here: Path) -> bool:
    return pkg.method(cls, here, "override_quantization_method") is not None


def registry(vllm: Path) -> dict[str, Any]:
    init = vllm / QDIR / "__init__.py"
    tree = _parse(init)
    assert tree is not None, init
    names: list[str] = []
    deprecated: list[str] = []
    mapping: dict[str, str] = {}
    imports: dict[str, ast.ImportFrom] = {}
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target == "QuantizationMethods":
                names = _strings(node.value)
            elif target == "DEPRECATED_QUANTIZATION_METHODS":
                deprecated = _strings(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id == "method_to_config" and isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Name):
                        mapping[k.value] = v.id
            if node.target.id == "DEPRECATED_QUANTIZATION_METHODS" and node.value is not None:
                deprecated = _strings(node.value)
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imports[alias.asname or alias.name] = node
        # `deepseek_config = DeepseekV41FP8Config` (CUDA branch first): follow the first one
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and isinstance(getattr(node, "value", None), ast.Name)
            and isinstance(
                node.targets[0] if isinstance(node, ast.Assign) else node.target, ast.Name
            )
        ):
            local = (node.targets[0] if isinstance(node, ast.Assign) else node.target).id  # type: ignore[union-attr]
            aliases.setdefault(local, node.value.id)  # type: ignore[union-attr]
    pkg = Package(vllm)
    methods: dict[str, dict[str, Any]] = {}
    for name in names:
        cls = mapping.get(name)
        cls = aliases.get(cls, cls) if cls else cls
        if cls is None and "OnlineQuantizationConfig" in imports:
            # online shorthands: method_to_config.setdefault(shorthand, OnlineQuantizationConfig)
            cls = "OnlineQuantizationConfig"
        row: dict[str, Any] = {"class": cls}
        if cls and cls in imports:
            src = pkg.resolve_import(init, imports[cls])
            real = next((a.name for a in imports[cls].names if (a.asname or a.name) == cls), cls)
            if src is not None:
                row["class"] = real
                row["min_capability"] = min_capability(pkg, real, src)
                row["act_dtypes"] = act_dtypes(pkg, real, src)
                row["override"] = has_override(pkg, real, src)
                row["file"] = str(pkg.find_class(real, src)[1].relative_to(vllm))  # type: ignore[index]
        row["deprecated"] = name in deprecated
        methods[name] = {k: v for k, v in row.items() if v is not None}
    return {
        "methods": methods,
        "overrides": override_order(vllm),
        "cpu": cpu_allow_list(vllm),
        "no_float16": float16_unsupported(vllm),
    }


def float16_unsupported(vllm: Path) -> list[str]:
    """config/model.py _FLOAT16_NOT_SUPPORTED_MODELS: model types _check_valid_dtype refuses
    float16 for."""
    for rel in ("config/model.py", "config/__init__.py", "config.py"):
        tree = _parse(vllm / rel)
        if tree is None:
            continue
        for node in ast.walk(tree):
            target = (
                node.targets[0]
                if isinstance(node, ast.Assign)
                else node.target
                if isinstance(node, ast.AnnAssign)
                else None
            )
            if (
                isinstance(target, ast.Name)
                and target.id == "_FLOAT16_NOT_SUPPORTED_MODELS"
                and isinstance(node.value, ast.Dict)  # type: ignore[union-attr]
            ):
                return sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant))  # type: ignore[union-attr]
    return []


def override_order(vllm: Path) -> list[str]:
    for rel in ("config/model.py", "config/__init__.py", "config.py"):
        tree = _parse(vllm / rel)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "overrides"
                and isinstance(node.value, ast.List)
            ):
                return _strings(node.value)
    return []


def cpu_allow_list(vllm: Path) -> list[str] | None:
    tree = _parse(vllm / "platforms" / "cpu.py")
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "supported_quantization":
                return _strings(node.value) if node.value is not None else None
    return None


def merged(per_release: dict[str, Any]) -> list[dict[str, Any]]:
    """Consecutive releases with equal values as rows {since, until, value}."""
    rows: list[dict[str, Any]] = []
    for ver, value in per_release.items():
        if rows and rows[-1]["value"] == value:
            rows[-1]["until"] = ver
        else:
            rows.append({"since": ver, "until": ver, "value": value})
    return rows


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def render(data: dict[str, dict[str, Any]]) -> str:
    vers = list(data)
    lines = [
        "# vLLM's quantization-method registry per release. Generated by",
        "# scripts/extract_quant_methods.py from the releases' own sources; do not edit.",
        "#",
        "# [[method.NAME]] rows: the releases `since`..`until` (inclusive) in which",
        "# `--quantization NAME` / quant_method NAME exists, with its config class",
        "# (model_executor/layers/quantization/<file>), the constant get_min_capability() returns",
        "# (checked against the GPU",
        "# by config/vllm.py _get_quantization_config), get_supported_act_dtypes(), whether the",
        "# class can override the checkpoint's method (override_quantization_method) and whether",
        "# the release lists it in DEPRECATED_QUANTIZATION_METHODS. A method absent from a",
        "# release has no row covering it there (vLLM: 'Unknown quantization method').",
        "# [[overrides]]: the order config/model.py _verify_quantization probes the overrides.",
        "# [[cpu]]: the CPU platform's allow-list (platforms/cpu.py supported_quantization).",
        "# [[no_float16]]: model types config/model.py _check_valid_dtype refuses float16 for.",
        "",
        f"releases = {_toml_value(vers)}",
        "",
    ]
    names = sorted({m for d in data.values() for m in d["methods"]})
    for name in names:
        per = {v: data[v]["methods"].get(name) for v in vers}
        for row in merged(per):
            if row["value"] is None:
                continue
            lines.append(f'[[method."{name}"]]')
            lines.append(f'since = "{row["since"]}"')
            lines.append(f'until = "{row["until"]}"')
            for key in ("class", "file", "min_capability", "act_dtypes", "override", "deprecated"):
                if key in row["value"]:
                    lines.append(f"{key} = {_toml_value(row['value'][key])}")
            lines.append("")
    for row in merged({v: data[v]["overrides"] for v in vers}):
        lines += ["[[overrides]]", f'since = "{row["since"]}"', f'until = "{row["until"]}"']
        lines += [f"order = {_toml_value(row['value'])}", ""]
    for row in merged({v: data[v]["no_float16"] for v in vers}):
        lines += ["[[no_float16]]", f'since = "{row["since"]}"', f'until = "{row["until"]}"']
        lines += [f"model_types = {_toml_value(row['value'])}", ""]
    for row in merged({v: data[v]["cpu"] for v in vers}):
        if row["value"] is None:
            continue
        lines += ["[[cpu]]", f'since = "{row["since"]}"', f'until = "{row["until"]}"']
        lines += [f"supported = {_toml_value(row['value'])}", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    args = ap.parse_args()
    data = {v: registry(CACHE / v / "vllm") for v in releases()}
    text = render(data)
    if args.check:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data)} releases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
