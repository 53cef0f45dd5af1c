"""A pasted launch, split into the model, `vllm serve` arguments and environment variables.

Recognised forms:
    vllm serve MODEL [ARGS]
    python -m vllm.entrypoints.openai.api_server --model MODEL [ARGS]
    docker run [DOCKER ARGS] vllm/vllm-openai[:TAG] --model MODEL [ARGS]
    LLM(model="MODEL", tensor_parallel_size=2, ...)        (Python keyword style)
    [ARGS]                                                  (the arguments alone)
each optionally preceded by `VAR=value` assignments (or `env VAR=value`).
"""

from __future__ import annotations

import ast
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from servecheck.errors import InputError

_API_SERVERS = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")


@dataclass(frozen=True)
class Command:
    model: str | None
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    source: str = "arguments"


def split_command(command: str | Sequence[str]) -> Command:
    """Split a pasted command line (a string or tokens) into model, arguments and env."""
    if isinstance(command, str):
        text = command.strip()
        if "LLM(" in text:
            return llm_call(text)
        try:
            tokens = shlex.split(text.replace("\\\n", " "), comments=True)
        except ValueError as exc:
            raise InputError(f"could not split the command: {exc}") from None
    else:
        tokens = list(command)
        if len(tokens) == 1 and (" " in tokens[0].strip() or "LLM(" in tokens[0]):
            return split_command(tokens[0])  # the whole command given as one quoted argument
    env, tokens = _leading_env(tokens)
    if len(tokens) >= 2 and _base(tokens[0]) == "vllm" and tokens[1] == "serve":
        rest = tokens[2:]
        if rest and not rest[0].startswith("-"):
            return Command(rest[0], tuple(rest[1:]), env, "vllm serve")
        return Command(None, tuple(rest), env, "vllm serve")
    is_module = len(tokens) >= 3 and _base(tokens[0]).startswith("python") and tokens[1] == "-m"
    if is_module and tokens[2] in _API_SERVERS:
        return Command(None, tuple(tokens[3:]), env, "api_server")
    if tokens[:2] == ["docker", "run"] or tokens[:3] == ["sudo", "docker", "run"]:
        return _docker(tokens, env)
    return Command(None, tuple(tokens), env, "arguments")


def _base(tok: str) -> str:
    return tok.rsplit("/", 1)[-1]


def _leading_env(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    i = 0
    if tokens[:1] == ["env"]:
        i = 1
    while i < len(tokens) and "=" in tokens[i] and not tokens[i].startswith("-"):
        name, value = tokens[i].split("=", 1)
        if not name.replace("_", "").isalnum():
            break
        env[name] = value
        i += 1
    return env, tokens[i:]


def _docker(tokens: list[str], env: dict[str, str]) -> Command:
    """`docker run ... IMAGE ARGS`: the image's entrypoint is vLLM's OpenAI server."""
    env = dict(env)
    for i, tok in enumerate(tokens):
        if tok in ("-e", "--env") and i + 1 < len(tokens) and "=" in tokens[i + 1]:
            name, value = tokens[i + 1].split("=", 1)
            env[name] = value
        if "vllm-openai" in tok or tok.startswith("vllm/vllm"):
            rest = tokens[i + 1 :]
            if rest[:2] == ["vllm", "serve"]:
                rest = rest[2:]
            return Command(None, tuple(rest), env, "docker")
    raise InputError("docker run: no vLLM image (vllm/vllm-openai) found in the command")


def llm_call(text: str) -> Command:
    """`LLM(model=..., key=value, ...)`: keyword arguments as `--key value` options."""
    start = text.index("LLM(")
    depth, end = 0, None
    for j in range(start + 3, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            end = j + 1
            break
    if end is None:
        raise InputError("LLM(...): unbalanced parentheses")
    try:
        call = ast.parse(text[start:end], mode="eval").body
    except SyntaxError as exc:
        raise InputError(f"LLM(...) is not valid Python: {exc.msg}") from None
    assert isinstance(call, ast.Call)
    model = None
    if call.args:
        model = _literal(call.args[0], "model")
    argv: list[str] = []
    for kw in call.keywords:
        if kw.arg is None:
            raise InputError("LLM(**kwargs): only literal keyword arguments can be read")
        value = _literal(kw.value, kw.arg)
        if kw.arg == "model":
            model = str(value)
            continue
        option = "--" + kw.arg.replace("_", "-")
        if value is True:
            argv.append(option)
        elif value is False:
            argv.append("--no-" + kw.arg.replace("_", "-"))
        elif value is None:
            continue
        elif isinstance(value, dict | list):
            argv += [option, json.dumps(value)]
        else:
            argv += [option, str(value)]
    return Command(model, tuple(argv), {}, "LLM(...)")


def _literal(node: ast.AST, name: str):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise InputError(
            f"LLM(...): {name}= is not a literal value ({ast.unparse(node)}); write the value"
        ) from None
