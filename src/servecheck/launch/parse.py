"""Parse `vllm serve` arguments the way the chosen release's parser does.

Mirrors vLLM's FlexibleArgumentParser.parse_args (utils/argparse_utils.py): `--model X` moved
to the front, underscores read as dashes in option names, `-O3` as the optimization level (or
the compilation level before 0.12), `--json-arg.key value` merged into one JSON argument, then
argparse itself: unique prefixes of long options, `--opt=value`, nargs, choices, typed values,
`--no-x` for booleans. Unknown options are collected, not fatal (a plugin or a newer release
may define them); values argparse would reject are collected with argparse's message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servecheck.launch.table import ArgSpec, ArgTable, arg_table
from servecheck.launch.values import convert, dotted_value

_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


@dataclass(frozen=True)
class Launch:
    """A parsed `vllm serve` launch: what was given, as vLLM reads it."""

    model: str | None
    values: Mapping[str, Any]  # EngineArgs field -> value, only the arguments given
    options: Mapping[str, str]  # EngineArgs field -> the option string as written
    release: str  # the release whose argument table was used
    requested: str  # the release asked for
    unknown: tuple[str, ...] = ()  # options the release does not define (with their values)
    errors: tuple[tuple[str, str], ...] = ()  # (option, argparse's message)
    deprecated: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # VAR=value given with the command
    source: str = "arguments"  # how it was given: "vllm serve", "api_server", "LLM(...)", ...
    argv: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def get(self, dest: str, default: Any = None) -> Any:
        return self.values.get(dest, default)

    def given(self, dest: str) -> bool:
        return dest in self.values

    def as_dict(self) -> dict[str, Any]:
        """The launch as read (JSON output)."""
        return {
            "source": self.source,
            "model": self.model,
            "vllm_arguments_of": self.release,
            "values": {k: _jsonable(v) for k, v in self.values.items()},
            "unknown": list(self.unknown),
            "errors": [{"option": o, "message": m} for o, m in self.errors],
            "deprecated": list(self.deprecated),
            "env": dict(self.env),
            "notes": list(self.notes),
        }

    def option(self, dest: str) -> str:
        """The option as the user wrote it (for messages), else its long name."""
        return self.options.get(dest) or "--" + dest.replace("_", "-")


def parse_args(
    argv: Sequence[str],
    version: str,
    *,
    model: str | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "arguments",
    model_taken: bool = False,
) -> Launch:
    """Parse `vllm serve` arguments (without `vllm serve`) for release `version`.

    `model_taken`: the command named its model before these arguments (`vllm serve MODEL`), so
    any positional argument here is left over, as vLLM's parser reports it."""
    table = arg_table(version)
    state = _State(table)
    state.model_taken = model_taken
    tokens = _preprocess(list(argv), table, state)
    state.walk(tokens)
    notes = []
    if model is None:
        model = state.model
    elif state.model is not None and state.model != model:
        notes.append(f"the command's model {state.model} is replaced by {model}")
    if not table.exact:
        notes.append(
            f"vLLM {version}'s arguments were not extracted; reading them as vLLM "
            f"{table.release} defines them"
        )
    return Launch(
        model=model,
        values=dict(state.values),
        options=dict(state.options),
        release=table.release,
        requested=version,
        unknown=tuple(state.unknown),
        errors=tuple(state.errors),
        deprecated=tuple(sorted(set(state.deprecated))),
        env=dict(env or {}),
        source=source,
        argv=tuple(argv),
        notes=tuple(notes + state.notes),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | type(None) | list | dict):
        return value
    return str(value)


class _State:
    def __init__(self, table: ArgTable):
        self.table = table
        self.values: dict[str, Any] = {}
        self.options: dict[str, str] = {}
        self.unknown: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.deprecated: list[str] = []
        self.notes: list[str] = []
        self.model: str | None = None
        self.model_taken = False

    # -- argparse --

    def walk(self, tokens: list[str]) -> None:
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "--":
                for rest in tokens[i + 1 :]:
                    self.positional(rest)
                return
            if not _option_like(tok):
                self.positional(tok)
                i += 1
                continue
            name, sep, rest = tok.partition("=")
            explicit = rest if sep else None
            spec = self.lookup(name)
            if spec is None:
                i = self.skip_unknown(tokens, i, explicit)
                continue
            i = self.take(spec, name, explicit, tokens, i + 1)

    def lookup(self, name: str) -> ArgSpec | None:
        by_option = self.table.by_option
        if name in by_option:
            return by_option[name]
        if name.startswith("--") and len(name) > 2:
            # argparse allow_abbrev: a unique prefix of a long option
            hits = {s.dest: (opt, s) for opt, s in by_option.items() if opt.startswith(name)}
            if len(hits) == 1:
                opt, spec = next(iter(hits.values()))
                self.notes.append(f"{name} read as {opt} (argparse accepts a unique prefix)")
                return spec
            if len(hits) > 1:
                matches = ", ".join(sorted(opt for opt, _ in hits.values()))
                self.errors.append((name, f"ambiguous option: {name} could match {matches}"))
                return _SWALLOW
        return None

    def skip_unknown(self, tokens: list[str], i: int, explicit: str | None) -> int:
        tok = tokens[i]
        if explicit is None and i + 1 < len(tokens) and not _option_like(tokens[i + 1]):
            self.unknown.append(f"{tok} {tokens[i + 1]}")
            return i + 2
        self.unknown.append(tok)
        return i + 1

    def positional(self, tok: str) -> None:
        if self.model is None and not self.model_taken:
            self.model = tok
        else:
            self.unknown.append(tok)

    def take(self, spec: ArgSpec, name: str, explicit: str | None, tokens: list[str], i: int):
        if spec is _SWALLOW:
            return i + (0 if explicit is not None or i >= len(tokens) else 1)
        if spec.deprecated:
            self.deprecated.append(name)
        if spec.kind in ("flag", "bool"):
            if explicit is not None:
                self.fail(spec, name, f"ignored explicit argument {explicit!r}")
                return i
            value = spec.flag_value
            if spec.kind == "bool":
                value = not self.table.negates(name, spec)
            self.store(spec, name, value)
            return i
        if spec.kind == "optional_flag":
            if explicit is not None:
                self.store(spec, name, explicit)
            elif i < len(tokens) and not _option_like(tokens[i]):
                self.store(spec, name, tokens[i])
                return i + 1
            else:
                self.store(spec, name, True)
            return i
        count = _count(spec)
        if explicit is not None:
            texts, i = [explicit], i
        else:
            texts = []
            while i < len(tokens) and not _option_like(tokens[i]) and tokens[i] != "--":
                texts.append(tokens[i])
                i += 1
                if count is not None and len(texts) == count:
                    break
        if not texts or (isinstance(count, int) and len(texts) < count):
            self.fail(spec, name, _expected(spec))
            return i
        try:
            values = [convert(spec, t) for t in texts]
        except ValueError as exc:
            self.fail(spec, name, str(exc))
            return i
        if spec.kind == "list" or count not in (None, 1):
            self.store(spec, name, values)
        elif spec.append:
            self.store(spec, name, [*self.values.get(spec.dest, []), values[0]])
        else:
            self.store(spec, name, values[0])
        return i

    def store(self, spec: ArgSpec, name: str, value: Any) -> None:
        self.values[spec.dest] = value
        self.options[spec.dest] = name

    def fail(self, spec: ArgSpec, name: str, message: str) -> None:
        shown = "/".join(spec.names) if name in spec.names else name
        self.errors.append((name, f"argument {shown}: {message}"))


_SWALLOW = ArgSpec(names=("",), dest="", kind="str", group="")


def _count(spec: ArgSpec) -> int | None:
    """Values to read: 1, a fixed number, or None (one or more)."""
    if spec.kind == "list" or spec.nargs in ("+", "*"):
        return None if not isinstance(spec.nargs, int) else spec.nargs
    if isinstance(spec.nargs, int):
        return spec.nargs
    return 1


def _expected(spec: ArgSpec) -> str:
    count = _count(spec)
    if count is None:
        return "expected at least one argument"
    if count == 1:
        return "expected one argument"
    return f"expected {count} arguments"


def _option_like(tok: str) -> bool:
    return tok.startswith("-") and len(tok) > 1 and not _NEGATIVE_NUMBER.match(tok)


# -- FlexibleArgumentParser's rewriting ---------------------------------------------------------


def _preprocess(args: list[str], table: ArgTable, state: _State) -> list[str]:
    args = _move_model(args, state)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and arg != "--":
            out.append(_dashes(arg))
        elif arg.startswith("-O") and arg != "-O" and table.dash_o:
            out += _dash_o(arg, table.dash_o)
        elif arg == "-O" and i + 1 < len(args) and args[i + 1] in {"0", "1", "2", "3"}:
            out += _dash_o("-O" + args[i + 1], table.dash_o)
            i += 1
        else:
            out.append(arg)
        i += 1
    return _merge_dotted(out, table, state)


def _move_model(args: list[str], state: _State) -> list[str]:
    """`--model X` anywhere: the model (vLLM moves it to the front)."""
    for i, arg in enumerate(args):
        if arg == "--model" and i + 1 < len(args):
            state.model = args[i + 1]
            return args[:i] + args[i + 2 :]
        if arg.startswith("--model="):
            state.model = arg.split("=", 1)[1]
            return args[:i] + args[i + 1 :]
    return args


def _dashes(arg: str) -> str:
    """Underscores in an option name (up to the first '.') read as dashes."""
    key, sep, value = arg.partition("=")
    head, dot, tail = key[2:].partition(".")
    return "--" + head.replace("_", "-") + dot + tail + sep + value


def _dash_o(arg: str, dash_o: str) -> list[str]:
    level = arg[3:] if arg[2:3] == "=" else arg[2:]
    if level.startswith("."):
        return [arg]  # -O.key value: a dotted compilation-config key
    if dash_o == "--optimization-level":
        return ["--optimization-level", level]
    return [f"{dash_o}={level}"]


def _merge_dotted(args: list[str], table: ArgTable, state: _State) -> list[str]:
    """`--json-arg.key value` pieces merged into `--json-arg '{"key": value}'` at the end."""
    out: list[str] = []
    merged: dict[str, dict[str, Any]] = {}
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        key_part = arg.split("=", 1)[0]
        if not (arg.startswith("-") and "." in key_part and not _NEGATIVE_NUMBER.match(arg)):
            out.append(arg)
            continue
        if "=" in arg:
            key_part, text = arg.split("=", 1)
        elif i + 1 < len(args):
            text, skip = args[i + 1], True
        else:
            out.append(arg)
            continue
        value: Any
        if key_part.endswith("+"):
            key_part, value = key_part[:-1], text.split(",")
        else:
            value = dotted_value(text, table.dotted_human_ints)
        head, *keys = key_part.split(".")
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _update(merged.setdefault(head, {}), nested)
    for head, value in merged.items():
        out += [head, json.dumps(value)]
    return out


def _update(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _update(into[k], v)
        elif isinstance(v, list) and isinstance(into.get(k), list):
            into[k] += v
        else:
            into[k] = v
