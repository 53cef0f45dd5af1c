"""Extract `vllm serve`'s arguments, per release, from the unpacked wheels (no vllm import).

    python scripts/extract_vllm_args.py                 # every unpacked release -> the table
    python scripts/extract_vllm_args.py --show 0.33.0   # print one release's arguments

Reads, for each release under `scripts/vllm_sources.py`'s cache:
- `engine/arg_utils.py`: EngineArgs.add_cli_args / AsyncEngineArgs.add_cli_args (every
  `add_argument` call, with the `**get_kwargs(SomeConfig)["field"]` specs it spreads and the
  edits made to them first), and `_compute_kwargs`/`get_kwargs` (how a config field's type
  becomes argparse settings: which int fields take human-readable sizes, ...);
- the config dataclasses those specs come from (`config.py` or `config/*.py`, followed through
  imports): field annotations and defaults;
- the OpenAI server's `make_arg_parser` (`entrypoints/openai/cli_args.py`, later
  `entrypoints/common/cli_args.py`) with FrontendArgs;
- FlexibleArgumentParser (`utils/argparse_utils.py` or `utils/__init__.py`): what `-O3` means,
  whether `--enable-x` also accepts `--disable-x`.

Writes `src/servecheck/knowledge/vllm_args.toml`: one [[arg]] row per distinct definition with
the range of releases (`from`, `to`, inclusive) that define it so, and [[parser]] rows for the
parser's own conventions. Everything is read from the AST of the release's own files.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_sources import CACHE, version_key

OUT = Path(__file__).resolve().parent.parent / "src/servecheck/knowledge/vllm_args.toml"

# -- a tiny module system over the unpacked sources -------------------------------------------


class Sources:
    """Parsed modules of one release, with name resolution through imports."""

    def __init__(self, root: Path):
        self.root = root  # the folder holding vllm/
        self._trees: dict[str, ast.Module | None] = {}

    def module_path(self, module: str) -> Path | None:
        base = self.root / Path(*module.split("."))
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.exists():
                return cand
        return None

    def tree(self, module: str) -> ast.Module | None:
        if module not in self._trees:
            path = self.module_path(module)
            self._trees[module] = ast.parse(path.read_text()) if path else None
        return self._trees[module]

    def resolve(self, module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | None:
        """(module, top-level node) defining `name` as seen from `module`."""
        tree = self.tree(module)
        if tree is None or depth > 12:
            return None
        found = None
        for node in _top_level(tree):
            if _defines(node, name):
                found = (module, node)
        if found:
            return found
        for node in _top_level(tree):
            if isinstance(node, ast.ImportFrom):
                src = _absolute(module, node, self.module_path(module))
                for alias in node.names:
                    if alias.name == "*" or (alias.asname or alias.name) == name:
                        real = name if alias.name == "*" else alias.name
                        got = self.resolve(src, real, depth + 1)
                        if got:
                            return got
                        sub = f"{src}.{real}"
                        if alias.name != "*" and self.tree(sub) is not None:
                            return (sub, self.tree(sub))
        return None


def _defines(node: ast.AST, name: str) -> bool:
    """Whether a top-level statement defines `name` (class, function, assignment, alias)."""
    if isinstance(node, ast.ClassDef | ast.FunctionDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        target = node.target
        return isinstance(target, ast.Name) and target.id == name and node.value is not None
    return type(node).__name__ == "TypeAlias" and getattr(node.name, "id", None) == name


def _top_level(tree: ast.Module):
    """Top-level statements, looking inside `if TYPE_CHECKING:`/try blocks too."""
    for node in tree.body:
        if isinstance(node, ast.If):
            yield from node.body
            yield from node.orelse
        elif isinstance(node, ast.Try):
            yield from node.body
            for h in node.handlers:
                yield from h.body
        else:
            yield node


def _absolute(module: str, node: ast.ImportFrom, path: Path | None) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    is_pkg = path is not None and path.name == "__init__.py"
    base = parts if is_pkg else parts[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


# -- type hints -> argparse settings, as _compute_kwargs does ----------------------------------


@dataclass
class Hints:
    """The flattened set of type hints of one field (Union/Optional/Annotated removed)."""

    names: set[str] = field(default_factory=set)  # builtin names: bool, int, str, ...
    literals: list[Any] | None = None
    dataclass: bool = False
    not_builtin: bool = False
    dict_subclass: bool = False
    elem: str | None = None  # element type of list/tuple/set
    tuple_len: int | None = None  # fixed-length tuple
    elem_choices: list[Any] | None = None  # list[Literal[...]]


TYPING_WRAPPERS = {"Optional", "Union", "Annotated", "SkipValidation"}
BUILTINS = {"bool", "int", "float", "str", "dict", "list", "tuple", "set", "None", "bytes"}
GENERIC_ALIASES = {"Dict": "dict", "List": "list", "Tuple": "tuple", "Set": "set"}
NON_BUILTIN = {"Any", "Callable", "Mapping", "Sequence", "Iterable", "Path", "TypeAlias"}


class TypeReader:
    def __init__(self, src: Sources):
        self.src = src

    def hints(self, module: str, node: ast.AST, out: Hints | None = None, depth: int = 0) -> Hints:
        out = out or Hints()
        if depth > 20:
            out.not_builtin = True
            return out
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                out.not_builtin = True
                return out
        if isinstance(node, ast.Constant) and node.value is None:
            out.names.add("None")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            self.hints(module, node.left, out, depth + 1)
            self.hints(module, node.right, out, depth + 1)
        elif isinstance(node, ast.Subscript):
            head = _name(node.value)
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head in TYPING_WRAPPERS:
                for a in args[:1] if head == "Annotated" else args:
                    self.hints(module, a, out, depth + 1)
            elif head == "Literal":
                values: list[Any] = []
                for a in args:
                    nested = self.nested_literal(module, a, depth)
                    values += nested if nested is not None else [_literal(module, a, self.src)]
                out.literals = (out.literals or []) + values
            elif head in ("list", "tuple", "set", "List", "Tuple", "Set"):
                kind = GENERIC_ALIASES.get(head, head)
                out.names.add(kind)
                inner = [a for a in args if not (isinstance(a, ast.Constant) and a.value is ...)]
                elem = self.hints(module, inner[0], Hints(), depth + 1) if inner else Hints()
                out.elem = _elem_kind(elem)
                if elem.literals is not None and "str" not in elem.names:
                    out.elem_choices = elem.literals
                if kind == "tuple" and len(inner) == len(args):
                    out.tuple_len = len(args)
            elif head in ("dict", "Dict"):
                out.names.add("dict")
            elif head in ("type", "ClassVar", "InitVar"):
                out.not_builtin = True
            else:
                self.named(module, head, out, depth)
        elif isinstance(node, ast.Name | ast.Attribute):
            self.named(module, _name(node), out, depth)
        else:
            out.not_builtin = True
        return out

    def nested_literal(self, module: str, node: ast.AST, depth: int) -> list[Any] | None:
        """Literal[..., OtherLiteral] flattens (typing does): the values of a named Literal."""
        if not isinstance(node, ast.Name):
            return None
        got = self.src.resolve(module, node.id)
        value = getattr(got[1], "value", None) if got else None
        if not (isinstance(value, ast.Subscript) and _name(value.value) == "Literal"):
            return None
        return self.hints(got[0], value, Hints(), depth + 1).literals

    def named(self, module: str, name: str, out: Hints, depth: int) -> None:
        if name in BUILTINS:
            out.names.add(name)
            return
        if name in GENERIC_ALIASES:
            out.names.add(GENERIC_ALIASES[name])
            return
        if name in NON_BUILTIN or "." in name:
            out.not_builtin = True
            return
        got = self.src.resolve(module, name)
        if got is None:
            out.not_builtin = True
            return
        mod, node = got
        if isinstance(node, ast.ClassDef):
            if _is_dataclass(node):
                out.dataclass = True
            elif any(_base_name(b) in ("dict", "Dict") for b in node.bases):
                out.dict_subclass = True
            else:
                out.not_builtin = True
            return
        value = getattr(node, "value", None)
        if value is None:
            out.not_builtin = True
            return
        if isinstance(value, ast.Call) and _name(value.func) in ("TypeAliasType", "NewType"):
            value = value.args[1] if len(value.args) > 1 else None
            if value is None:
                out.not_builtin = True
                return
        self.hints(mod, value, out, depth + 1)


def _is_dataclass(node: ast.ClassDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if _name(target).split(".")[-1] in ("dataclass", "config"):
            return True
    return False


def _base_name(node: ast.AST) -> str:
    return _name(node.value if isinstance(node, ast.Subscript) else node)


def _elem_kind(h: Hints) -> str:
    if h.literals is not None and "str" not in h.names:
        return "int" if all(isinstance(v, int) for v in h.literals) else "str"
    for name in ("int", "float"):
        if name in h.names and "str" not in h.names:
            return name
    return "str"


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _literal(module: str, node: ast.AST, src: Sources) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(module, node.operand, src)
    if isinstance(node, ast.Name):
        got = src.resolve(module, node.id)
        if got and isinstance(got[1], ast.Assign | ast.AnnAssign):
            value = got[1].value
            if isinstance(value, ast.Constant):
                return value.value
    return ast.unparse(node)


# -- the version's own _compute_kwargs decisions ----------------------------------------------


@dataclass
class KwargRules:
    """What a release's _compute_kwargs does with int fields and optional-valued flags."""

    human_int: dict[str, str]  # field name -> "human_int" | "human_int_or_auto"
    optional_flag: bool  # {bool, str, None} fields become `--x [VALUE]`
    dict_subclass: bool  # dict subclasses are CLI dicts


def kwarg_rules(src: Sources) -> KwargRules:
    tree = src.tree("vllm.engine.arg_utils")
    func = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name in ("_compute_kwargs", "get_kwargs")
    )
    text = ast.unparse(func)
    human: dict[str, str] = {}
    for node in ast.walk(func):
        is_int_branch = isinstance(node, ast.If) and "contains_type(type_hints, int)" in (
            ast.unparse(node.test)
        )
        if not is_int_branch:
            continue
        sets: dict[str, set[str]] = {}
        for sub in ast.walk(ast.Module(body=node.body, type_ignores=[])):
            if isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Set):
                sets[_name(sub.targets[0])] = {_const(e) for e in sub.value.elts}
        for sub in ast.walk(ast.Module(body=node.body, type_ignores=[])):
            if not isinstance(sub, ast.If):
                continue
            names = _compared_names(sub.test, sets)
            func_name = _assigned_type(sub.body)
            if names and func_name:
                kind = "human_int_or_auto" if func_name.endswith("_or_auto") else "human_int"
                for n in names:
                    human.setdefault(n, kind)
        break
    return KwargRules(
        human_int=human,
        optional_flag="{bool, str, type(None)}" in text,
        dict_subclass="is_dict_subclass" in text,
    )


def _const(node: ast.AST) -> str:
    return node.value if isinstance(node, ast.Constant) else ast.unparse(node)


def _compared_names(test: ast.AST, sets: dict[str, set[str]]) -> set[str]:
    if isinstance(test, ast.Compare) and _name(test.left) == "name":
        right = test.comparators[0]
        if isinstance(test.ops[0], ast.Eq) and isinstance(right, ast.Constant):
            return {right.value}
        if isinstance(test.ops[0], ast.In):
            if isinstance(right, ast.Set | ast.List | ast.Tuple):
                return {_const(e) for e in right.elts}
            return sets.get(_name(right), set())
    return set()


def _assigned_type(body: list[ast.stmt]) -> str | None:
    for stmt in body:
        target = ast.unparse(stmt.targets[0]) if isinstance(stmt, ast.Assign) else ""
        if target.endswith(("['type']", '["type"]')):
            return _name(stmt.value)
    return None


def field_spec(hints: Hints, name: str, rules: KwargRules) -> dict[str, Any]:
    """The argparse settings _compute_kwargs derives from one field's type hints."""
    optional = "None" in hints.names
    names = hints.names
    spec: dict[str, Any]
    if hints.dict_subclass and rules.dict_subclass:
        names = names | {"dict"}
    if hints.dataclass:
        spec = {"kind": "json"}
    elif rules.optional_flag and names == {"bool", "str", "None"} and hints.literals is None:
        return {"kind": "optional_flag", "nargs": "?"}
    elif "bool" in names:
        return {"kind": "bool"}
    elif hints.literals is not None:
        values = hints.literals
        if "str" in names:
            spec = {"kind": "str"}
        else:
            spec = {"kind": "choice", "choices": [v for v in values]}
            spec["value_type"] = "int" if all(isinstance(v, int) for v in values) else "str"
    elif names & {"tuple", "list", "set"}:
        spec = {"kind": "list", "value_type": hints.elem or "str", "nargs": "+"}
        if hints.elem_choices:
            spec["list_choices"] = hints.elem_choices
        if "tuple" in names and hints.tuple_len and not names & {"list", "set"}:
            spec["nargs"] = hints.tuple_len
    elif "int" in names:
        spec = {"kind": rules.human_int.get(name, "int")}
    elif "float" in names:
        spec = {"kind": "float"}
    elif "dict" in names and ("str" in names or hints.not_builtin):
        spec = {"kind": "dict_or_str"}
    elif "dict" in names:
        spec = {"kind": "json"}
    elif "str" in names or hints.not_builtin:
        spec = {"kind": "str"}
    else:
        spec = {"kind": "str", "note": "unsupported type"}
    if optional:
        spec["optional"] = True
    return spec


# -- dataclass fields --------------------------------------------------------------------------


class Classes:
    def __init__(self, src: Sources, types: TypeReader, rules: KwargRules):
        self.src, self.types, self.rules = src, types, rules

    def fields(self, module: str, cls_name: str) -> dict[str, dict[str, Any]]:
        """get_kwargs(cls): field name -> spec (with default), in field order."""
        got = self.src.resolve(module, cls_name)
        if got is None or not isinstance(got[1], ast.ClassDef):
            raise LookupError(f"class {cls_name} not found from {module}")
        mod, node = got
        out: dict[str, dict[str, Any]] = {}
        for base in node.bases:
            base_name = _name(base)
            if base_name and base_name not in ("object", "Generic") and "." not in base_name:
                with contextlib.suppress(LookupError):
                    out.update(self.fields(mod, base_name))
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            ann = ast.unparse(stmt.annotation)
            if ann.startswith(("ClassVar", "InitVar", "typing.ClassVar")):
                continue
            name = stmt.target.id
            hints = self.types.hints(mod, stmt.annotation)
            spec = field_spec(hints, name, self.rules)
            default = _default(stmt.value)
            if default is not _UNKNOWN:
                spec["default"] = default
            out[name] = spec
        return out


_UNKNOWN = object()


def _default(node: ast.AST | None) -> Any:
    if node is None:
        return _UNKNOWN
    if isinstance(node, ast.Call) and _name(node.func).split(".")[-1] in ("field", "Field"):
        for kw in node.keywords:
            if kw.arg == "default":
                return _default(kw.value)
            if kw.arg == "default_factory":
                factory = kw.value
                if _name(factory) in ("list", "dict", "set"):
                    return {"list": [], "dict": {}, "set": []}[_name(factory)]
                if isinstance(factory, ast.Lambda):
                    return _default(factory.body)
                return _UNKNOWN
        if node.args:
            return _default(node.args[0])
        return _UNKNOWN
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return _UNKNOWN
    if isinstance(value, tuple | set):
        value = list(value)
    return value


# -- add_cli_args, interpreted -----------------------------------------------------------------


class Interpreter:
    """Walks add_cli_args-like functions and records every add_argument call."""

    def __init__(self, src: Sources, classes: Classes):
        self.src, self.classes = src, classes
        self.args: list[dict[str, Any]] = []
        self.group = ""

    def run_method(self, module: str, cls_name: str, method: str, self_cls: str | None = None):
        got = self.src.resolve(module, cls_name)
        if got is None:
            raise LookupError(f"{cls_name} not found from {module}")
        mod, cls = got
        func = _method(cls, method)
        if func is None:
            for base in cls.bases:
                if _name(base) and "." not in _name(base):
                    try:
                        self.run_method(mod, _name(base), method, self_cls or cls_name)
                        return
                    except LookupError:
                        continue
            raise LookupError(f"{cls_name}.{method} not found")
        self.run_body(mod, func.body, {}, self_cls or cls_name)

    def run_function(self, module: str, name: str):
        got = self.src.resolve(module, name)
        if got is None or not isinstance(got[1], ast.FunctionDef):
            raise LookupError(f"function {name} not found from {module}")
        self.run_body(got[0], got[1].body, {}, None)

    def run_body(self, mod: str, body: list[ast.stmt], env: dict[str, Any], self_cls: str | None):
        for stmt in body:
            self.statement(mod, stmt, env, self_cls)

    def statement(self, mod: str, stmt: ast.stmt, env: dict[str, Any], self_cls: str | None):
        if isinstance(stmt, ast.If):
            self.run_body(mod, stmt.body, env, self_cls)
            self.run_body(mod, stmt.orelse, env, self_cls)
        elif isinstance(stmt, ast.For):
            self.loop(mod, stmt, env, self_cls)
        elif isinstance(stmt, ast.Assign):
            self.assign(mod, stmt.targets[0], stmt.value, env, self_cls)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                if isinstance(target, ast.Subscript):
                    holder = self.value(mod, target.value, env, self_cls)
                    if isinstance(holder, dict):
                        holder.pop(_const(target.slice), None)
        elif isinstance(stmt, ast.Expr | ast.Return) and stmt.value is not None:
            self.value(mod, stmt.value, env, self_cls)

    def assign(self, mod, target, value_node, env, self_cls):
        value = self.value(mod, value_node, env, self_cls)
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, ast.Subscript):
            holder = self.value(mod, target.value, env, self_cls)
            if isinstance(holder, dict):
                key = _const(target.slice)
                holder[key] = (key, value_node, mod) if key in ("type", "action") else value

    def loop(self, mod, stmt: ast.For, env, self_cls):
        # `for key, value in frontend_kwargs.items(): group.add_argument(f"--{key...}", **value)`
        it = stmt.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute)):
            return
        source = self.value(mod, it.func.value, env, self_cls)
        if not isinstance(source, dict) or not isinstance(stmt.target, ast.Tuple):
            return
        key_name, value_name = (_name(e) for e in stmt.target.elts)
        for key, value in list(source.items()):
            inner = dict(env)
            inner[key_name] = ("str", key)
            inner[value_name] = value
            self.run_body(mod, stmt.body, inner, self_cls)

    def value(self, mod, node, env, self_cls):
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Subscript):
            holder = self.value(mod, node.value, env, self_cls)
            if isinstance(holder, dict):
                return holder.get(_const(node.slice))
            return None
        if isinstance(node, ast.Dict):
            out: dict[str, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    spread = self.value(mod, v, env, self_cls)
                    if isinstance(spread, dict):
                        out.update(spread)
                else:
                    key = _const(k)
                    out[key] = (key, v, mod) if key in ("type", "action") else self.literal(v)
            return out
        if isinstance(node, ast.Call):
            return self.call(mod, node, env, self_cls)
        return None

    def literal(self, node):
        d = _default(node)
        return None if d is _UNKNOWN else d

    def call(self, mod, node: ast.Call, env, self_cls):
        fname = _name(node.func)
        short = fname.split(".")[-1]
        if short == "get_kwargs" and node.args:
            cls_name = _name(node.args[0])
            if cls_name == "cls" and self_cls:
                cls_name = self_cls
            return self.classes.fields(mod, cls_name)
        if short == "deepcopy" and node.args:
            return self.value(mod, node.args[0], env, self_cls)
        if short == "add_argument_group":
            self.group = (self_cls or "Other").replace("Args", "")
            for kw in node.keywords:
                if kw.arg == "title" and isinstance(kw.value, ast.Constant):
                    self.group = kw.value.value
            if node.args and isinstance(node.args[0], ast.Constant):
                self.group = node.args[0].value
            return None
        if short == "add_argument":
            self.add_argument(mod, node, env, self_cls)
            return None
        if short == "add_cli_args" and isinstance(node.func, ast.Attribute):
            owner = _name(node.func.value)
            if owner in ("cls",) and self_cls:
                owner = self_cls
            if owner and owner not in ("super()",) and "." not in owner:
                self.run_method(mod, owner, "add_cli_args")
            return None
        if short == "_customize_cli_kwargs" and node.args:
            target = self.value(mod, node.args[0], env, self_cls)
            if self_cls:
                self.customize(mod, self_cls, target)
            return target
        if short == "pop" and isinstance(node.func, ast.Attribute):
            holder = self.value(mod, node.func.value, env, self_cls)
            if isinstance(holder, dict) and node.args:
                return holder.pop(_const(node.args[0]), None)
            return None
        if short == "remove" and isinstance(node.func, ast.Attribute) and node.args:
            holder = self.value(mod, node.func.value, env, self_cls)
            gone = _literal(mod, node.args[0], self.src)
            if isinstance(holder, list) and gone in holder:
                holder.remove(gone)
            return None
        if short == "items" and isinstance(node.func, ast.Attribute):
            return self.value(mod, node.func.value, env, self_cls)
        return None

    def customize(self, mod: str, cls_name: str, target: dict):
        """Run cls._customize_cli_kwargs (and its bases') edits on `target`."""
        chain = []
        current: str | None = cls_name
        cur_mod = mod
        while current:
            got = self.src.resolve(cur_mod, current)
            if got is None or not isinstance(got[1], ast.ClassDef):
                break
            cur_mod, cls = got
            func = _method(cls, "_customize_cli_kwargs")
            if func is not None:
                chain.append((cur_mod, func))
            bases = [_name(b) for b in cls.bases if _name(b) and "." not in _name(b)]
            current = bases[0] if bases else None
        for fmod, func in reversed(chain):
            arg = func.args.args[1].arg if len(func.args.args) > 1 else "kwargs"
            env = {arg: target}
            for stmt in func.body:
                if isinstance(stmt, ast.Assign) and "super()" in ast.unparse(stmt.value):
                    continue
                self.statement(fmod, stmt, env, cls_name)

    def add_argument(self, mod, node: ast.Call, env, self_cls):
        names: list[str] = []
        spec: dict[str, Any] = {}
        for a in node.args:
            if isinstance(a, ast.Starred):
                extra = self.value(mod, a.value, env, self_cls)
                if isinstance(extra, list):
                    names += [x for x in extra if isinstance(x, str)]
            elif isinstance(a, ast.Constant) and isinstance(a.value, str):
                names.append(a.value)
            elif isinstance(a, ast.JoinedStr):
                names.append(self.fstring(a, env))
        for kw in node.keywords:
            if kw.arg is None:
                spread = self.value(mod, kw.value, env, self_cls)
                if isinstance(spread, dict):
                    spec.update(spread)
            elif kw.arg == "type":
                spec["type"] = ("type", kw.value, mod)
            elif kw.arg == "action":
                spec["action"] = ("action", kw.value, mod)
            elif kw.arg == "choices" and isinstance(kw.value, ast.BinOp):
                # e.g. ["auto", "cpu"] + [platform device]: the fixed part
                spec["choices"] = self.literal(kw.value.left)
            elif kw.arg == "choices" and isinstance(kw.value, ast.Call):
                if _name(kw.value.func).endswith("get_args") and kw.value.args:
                    hints = self.classes.types.hints(mod, kw.value.args[0])
                    spec["choices"] = hints.literals
            else:
                spec[kw.arg] = self.literal(kw.value)
        if not names or not names[0].startswith("-"):
            return  # positionals (the model) are handled by the parser itself
        self.args.append({"names": names, "spec": dict(spec), "group": self.group})

    def fstring(self, node: ast.JoinedStr, env) -> str:
        text = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += part.value
            elif isinstance(part, ast.FormattedValue):
                inner = part.value
                base = inner.func.value if isinstance(inner, ast.Call) else inner
                val = env.get(_name(base))
                key = val[1] if isinstance(val, tuple) and val[0] == "str" else str(val)
                if isinstance(inner, ast.Call) and _name(inner.func).endswith("replace"):
                    key = key.replace("_", "-")
                text += key
        return text


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


# -- finishing one argument --------------------------------------------------------------------

TYPE_FUNCS = {
    "int": "int",
    "float": "float",
    "str": "str",
    "human_readable_int": "human_int",
    "human_readable_int_or_auto": "human_int_or_auto",
    "json.loads": "json",
    "loads": "json",
    "union_dict_and_str": "dict_or_str",
}


def _type_kind(node: ast.AST) -> tuple[str, bool]:
    """(kind, optional) of an argparse `type=` expression."""
    if isinstance(node, ast.Call):
        fname = _name(node.func).split(".")[-1]
        if fname == "optional_type" and node.args:
            kind, _ = _type_kind(node.args[0])
            return kind, True
        if fname == "parse_type" and node.args:
            return _type_kind(node.args[0])
        return "str", False
    name = _name(node)
    if name in TYPE_FUNCS:
        return TYPE_FUNCS[name], False
    if name.split(".")[-1] in TYPE_FUNCS:
        return TYPE_FUNCS[name.split(".")[-1]], False
    if name.startswith("parse_dataclass") or name == "parse_dataclass":
        return "json", False
    return "str", False


def finish(raw: dict[str, Any]) -> dict[str, Any]:
    spec = raw["spec"]
    names = raw["names"]
    long = next((n for n in names if n.startswith("--")), names[0])
    dest = spec.get("dest") or long.lstrip("-").replace("-", "_")
    out: dict[str, Any] = {"names": names, "dest": dest}
    kind = spec.get("kind", "str")
    optional = bool(spec.get("optional"))
    if "type" in spec and isinstance(spec["type"], tuple):
        kind, optional = _type_kind(spec["type"][1])
        if kind == "str" and spec.get("kind") == "choice":
            kind = "choice"
    action = spec.get("action")
    if isinstance(action, tuple):
        aname = _name(action[1]) if not isinstance(action[1], ast.Constant) else action[1].value
        aname = aname.split(".")[-1]
        if aname in ("store_true", "store_false", "store_const", "count"):
            kind = "flag"
            if aname == "store_false":
                out["flag_value"] = False
        elif aname == "BooleanOptionalAction":
            kind = "bool"
        elif aname == "append":
            out["append"] = True
        elif aname in ("LoRAParserAction",):
            kind = "list"
            spec.setdefault("nargs", "+")
    elif spec.get("kind") == "bool":
        kind = "bool"
    choices = spec.get("choices")
    if isinstance(choices, list) and choices and kind not in ("flag", "bool"):
        out["choices"] = [c for c in choices if c is not None and c != "None"]
        if kind == "str":
            kind = "choice"
    elif kind == "choice" and isinstance(spec.get("choices"), list):
        out["choices"] = spec["choices"]
    if kind == "choice" and "choices" not in out:
        kind = "str"
    if kind == "choice":
        out["value_type"] = spec.get("value_type") or (
            "int" if all(isinstance(c, int) for c in out["choices"]) else "str"
        )
    if kind == "list":
        out["value_type"] = spec.get("value_type", "str")
        if spec.get("list_choices"):
            out["choices"] = spec["list_choices"]
    out["kind"] = kind
    nargs = spec.get("nargs")
    if nargs is not None and kind not in ("flag", "bool"):
        out["nargs"] = nargs
    if optional:
        out["optional"] = True
    default = spec.get("default")
    if isinstance(default, bool | int | float | str) or (
        isinstance(default, list) and all(isinstance(x, bool | int | float | str) for x in default)
    ):
        out["default"] = default
    if spec.get("deprecated"):
        out["deprecated"] = True
    out["group"] = raw["group"] or "Other"
    return out


# -- one release -------------------------------------------------------------------------------


def parser_module(src: Sources) -> str:
    for mod in ("vllm.utils.argparse_utils", "vllm.utils"):
        tree = src.tree(mod)
        if tree is not None and any(
            isinstance(n, ast.ClassDef) and n.name == "FlexibleArgumentParser" for n in tree.body
        ):
            return mod
    raise LookupError("FlexibleArgumentParser not found")


def parser_conventions(src: Sources) -> dict[str, Any]:
    mod = parser_module(src)
    text = src.module_path(mod).read_text()
    cls_start = text.index("class FlexibleArgumentParser")
    body = text[cls_start:]
    if "--optimization-level" in body:
        dash_o = "--optimization-level"
    elif "-O.level" in body:
        dash_o = "-O.level"
    elif "-O.mode" in body:
        dash_o = "-O.mode"
    else:
        dash_o = ""
    return {
        "dash_o": dash_o,
        "enable_disable_pairs": "EnableDisableAction" in body,
        "list_plus": 'endswith("+")' in body or "endswith('+')" in body,
        "dotted_human_ints": "human_readable_int(value_str)" in body,
    }


def frontend_module(src: Sources) -> str:
    """The module whose make_arg_parser builds `vllm serve`'s parser (it moved over releases)."""
    for path in sorted((src.root / "vllm/entrypoints").rglob("cli_args.py")):
        mod = ".".join(path.relative_to(src.root).with_suffix("").parts)
        tree = src.tree(mod)
        if tree is not None and any(
            isinstance(n, ast.FunctionDef) and n.name == "make_arg_parser" for n in tree.body
        ):
            return mod
    raise LookupError("make_arg_parser not found")


def extract(version: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    src = Sources(CACHE / version)
    rules = kwarg_rules(src)
    classes = Classes(src, TypeReader(src), rules)
    interp = Interpreter(src, classes)
    interp.run_function(frontend_module(src), "make_arg_parser")
    seen: dict[str, dict[str, Any]] = {}
    for raw in interp.args:
        arg = finish(raw)
        key = arg["names"][0]
        seen[key] = arg  # a later definition of the same option replaces an earlier one
    args = sorted(seen.values(), key=lambda a: a["names"][0].lstrip("-"))
    return args, parser_conventions(src)


# -- ranges and output -------------------------------------------------------------------------


def releases() -> list[str]:
    found = [p.name for p in CACHE.iterdir() if (p / "vllm/engine/arg_utils.py").exists()]
    return sorted(found, key=version_key)


def ranges(per_release: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge identical definitions over consecutive releases into [from, to] rows."""
    order = list(per_release)
    rows: list[dict[str, Any]] = []
    open_rows: dict[str, dict[str, Any]] = {}
    for i, version in enumerate(order):
        current = {json.dumps(a, sort_keys=True): a for a in per_release[version]}
        for key, arg in current.items():
            row = open_rows.get(key)
            if row is not None and row["to"] == order[i - 1]:
                row["to"] = version
            else:
                row = {**arg, "from": version, "to": version}
                open_rows[key] = row
                rows.append(row)
    rows.sort(key=lambda r: (r.get("names", [""])[0].lstrip("-"), version_key(r["from"])))
    return rows


def to_toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {to_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


KEY_ORDER = (
    "names", "dest", "kind", "value_type", "choices", "nargs", "optional", "append",
    "flag_value", "default", "deprecated", "group", "from", "to",
)  # fmt: skip


PARSER_KEYS = ("dash_o", "enable_disable_pairs", "list_plus", "dotted_human_ints", "from", "to")


def write(rows: list[dict[str, Any]], parser_rows: list[dict[str, Any]], versions: list[str]):
    lines = [
        "# vLLM's `vllm serve` arguments per release, extracted from the released wheels by",
        "# scripts/extract_vllm_args.py (EngineArgs.add_cli_args, the config dataclasses and the",
        "# OpenAI server's make_arg_parser). Generated: do not edit by hand; re-run the script.",
        "#",
        "# [[arg]]: one definition, valid for releases `from` .. `to` (inclusive).",
        "#   names  option strings (first = the long name); dest = the EngineArgs field",
        "#   kind   flag (no value) | bool (--x / --no-x) | int | human_int (1k, 2M, 25.6k) |",
        "#          human_int_or_auto (also -1/auto) | float | str | choice | json | dict_or_str |",
        "#          list (nargs) | optional_flag (--x or --x VALUE)",
        "# [[parser]]: FlexibleArgumentParser conventions (what -O3 becomes, whether --enable-x",
        "#   also takes --disable-x) for releases `from` .. `to`.",
        "",
        f"releases = {to_toml(versions)}",
        "",
    ]
    for row in parser_rows:
        lines.append("[[parser]]")
        for key in PARSER_KEYS:
            lines.append(f"{key} = {to_toml(row[key])}")
        lines.append("")
    for row in rows:
        lines.append("[[arg]]")
        for key in KEY_ORDER:
            if key in row:
                lines.append(f"{key} = {to_toml(row[key])}")
        lines.append("")
    OUT.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--show", metavar="VERSION", help="print one release's arguments")
    opts = ap.parse_args()
    if opts.show:
        args, conv = extract(opts.show)
        print(json.dumps(conv))
        for a in args:
            print(json.dumps(a))
        print(f"{len(args)} arguments", file=sys.stderr)
        return
    versions = releases()
    per: dict[str, list[dict[str, Any]]] = {}
    conventions: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        args, conv = extract(v)
        per[v] = args
        conventions[v] = [conv]
        print(f"{v}: {len(args)} arguments", file=sys.stderr)
    write(ranges(per), ranges(conventions), versions)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
