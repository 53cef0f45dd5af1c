"""Mine the error messages vLLM can print at start-up into a data table for `servecheck explain`.

    python scripts/extract_vllm_messages.py            # every release in vllm_releases.toml
    python scripts/extract_vllm_messages.py 0.33.0     # only these releases (a trial run)
    python scripts/extract_vllm_messages.py --stats    # counts, without writing

For each release (Python sources unpacked by scripts/vllm_sources.py; vLLM is never imported)
every `raise X(message)`, `assert cond, message` and `logger.error/warning/exception(message,
*args)` in the code that runs while vLLM starts is read with `ast`. The message expression is
turned into a template: literal text is kept, every formatted part (f-string field, %-format,
str.format field, a variable not assigned in the function) becomes a `{name}` placeholder, and
literal braces are doubled. A variable assigned a message earlier in the function (`msg = f"..."`,
`msg += ...`) is followed. Templates with too little literal text to be recognised are dropped.

Each row of src/servecheck/knowledge/vllm_messages.json is one message: exception class (or
`log.error` / `log.warning`), template, file and function where it is raised in the newest
release that has it, the releases that have it (ranges of the release list), and its family
(knowledge/explain_families.toml decides, from the message words and the file's path, through
servecheck.explain.families.family_of, which explain uses for errors it does not know).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_sources import source_dir, version_key

from servecheck.explain.families import family_of

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "src" / "servecheck" / "knowledge"
OUT = KNOWLEDGE / "vllm_messages.json"

# The code that runs while vLLM starts: paths under vllm/ (a prefix of the file's path).
START_UP = (
    "config/",
    "config.py",
    "engine/",
    "v1/engine/",
    "v1/worker/",
    "v1/core/",
    "v1/executor/",
    "v1/kv_cache_interface.py",
    "v1/spec_decode/",
    "worker/",
    "executor/",
    "model_executor/model_loader/",
    "model_executor/layers/",
    "model_executor/kernels/",
    "model_executor/parameter.py",
    "model_executor/models/registry.py",
    "model_executor/models/interfaces",
    "model_executor/models/transformers",
    "attention/",
    "v1/attention/",
    "vllm_flash_attn/",
    "platforms/",
    "distributed/",
    "transformers_utils/",
    "tokenizers/",
    "entrypoints/openai/cli_args.py",
    "entrypoints/cli/serve.py",
    "entrypoints/utils.py",
    "entrypoints/llm.py",
    "compilation/",
    "utils/deep_gemm.py",
    "utils/flashinfer.py",
    "utils/import_utils.py",
    "_custom_ops.py",
    "multimodal/registry.py",
    "lora/",
)
# Parts of those paths that do not run at start-up (KV/EC transfer connectors, weight transfer
# for RL, elastic EP, backward-pass kernels, LoRA kernels).
SKIP = (
    "distributed/kv_transfer/",
    "distributed/ec_transfer/",
    "distributed/weight_transfer/",
    "distributed/elastic_ep/",
    "vllm_flash_attn/cute/flash_bwd",
    "vllm_flash_attn/cute/block_sparsity.py",
    "lora/ops/",
    "model_executor/model_loader/weight_cache",
    "vllm_flash_attn/cute/",
    "v1/attention/ops/",
)
# Functions that run per step (forward passes, kernels' apply, scheduling), not at start-up.
PER_STEP = re.compile(
    r"(?:^|\.)(?:_?forward\w*|__call__|apply|apply_weights|apply_monolithic|execute_model"
    r"|schedule|step|_?sample\w*|update_from_output)$"
)
# Enough literal text to recognise a message: characters and words outside placeholders.
MIN_LITERAL = 25
MIN_WORDS = 4
# Asserts are kept when they read as a refusal a user can act on (not an internal invariant),
# warnings when they say something failed or is refused; neither from the generic engine family.
ASSERT_WORDS = re.compile(
    r"support|divisible|must|requires?|only|please|cannot|can't|exceed|too |invalid"
    r"|not (?:available|found|compatible|installed|enough)",
    re.I,
)
MIN_ASSERT_LITERAL = 35
WARNING_WORDS = re.compile(
    r"not supported|unsupported|fail|cannot|can't|unable|insufficient|exceed|invalid|error"
    r"|too (?:small|large|long|many|few)|fall(?:ing)? ?back|requires?|must"
    r"|not (?:available|found|compatible|installed)",
    re.I,
)
# Templates are kept to their first characters (cut at a word): enough to recognise them.
MAX_TEMPLATE = 120
# Exception classes as Python prints them (an internal control-flow class such as `Fallback`
# is caught inside vLLM, never printed).
EXCEPTION_NAME = re.compile(r"(?:Error|Exception|Exit|Interrupt|Warning|Fault)$")
# Logging methods read, and the kind of row each gives.
LOG_KINDS = {
    "error": "log.error",
    "error_once": "log.error",
    "exception": "log.error",
    "critical": "log.error",
    "fatal": "log.error",
    "warning": "log.warning",
    "warning_once": "log.warning",
    "warn": "log.warning",
}
LOGGERS = re.compile(r"^_?(?:logger|log|LOGGER|init_logger\(.*\))$")

_PERCENT = re.compile(
    r"%(?:\((?P<key>\w+)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]"
)
_FORMAT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class Message:
    exception: str
    template: str
    literal: str
    file: str
    function: str


# --------------------------------------------------------------------------------------------
# Templates from message expressions
# --------------------------------------------------------------------------------------------

Part = tuple[str, str]  # ("lit", text) or ("ph", name)


def _name(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        text = ""
    text = re.sub(r"^(?:self|cls)\.", "", text)
    text = re.sub(r"\W+", "_", text).strip("_")[:32].strip("_")
    return text if text and not text[0].isdigit() else "value"


def _percent(fmt: str, args: list[ast.AST], env: dict, depth: int) -> list[Part]:
    parts: list[Part] = []
    pos = 0
    index = 0
    for m in _PERCENT.finditer(fmt):
        parts.append(("lit", fmt[pos : m.start()]))
        pos = m.end()
        if m.group(0) == "%%":
            parts.append(("lit", "%"))
            continue
        if m.group("key"):
            parts.append(("ph", m.group("key")))
            continue
        arg = args[index] if index < len(args) else None
        index += 1
        parts += _expr(arg, env, depth + 1) if arg is not None else [("ph", "value")]
    parts.append(("lit", fmt[pos:]))
    return parts


def _str_format(fmt: str, args: list[ast.AST], keywords: dict, env: dict, depth: int) -> list:
    parts: list[Part] = []
    pos = 0
    auto = 0
    for m in _FORMAT_FIELD.finditer(fmt):
        parts.append(("lit", fmt[pos : m.start()]))
        pos = m.end()
        if m.group(0) in ("{{", "}}"):
            parts.append(("lit", m.group(0)[0]))
            continue
        field = re.split(r"[!:.\[]", m.group(1), maxsplit=1)[0]
        if field == "" or field.isdigit():
            i = auto if field == "" else int(field)
            auto += 1
            arg = args[i] if i < len(args) else None
        else:
            arg = keywords.get(field)
        parts += _expr(arg, env, depth + 1) if arg is not None else [("ph", field or "value")]
    parts.append(("lit", fmt[pos:]))
    return parts


def _expr(node: ast.AST | None, env: dict, depth: int = 0) -> list[Part]:
    """Template parts of a message expression."""
    if node is None or depth > 6:
        return [("ph", "value")]
    if isinstance(node, ast.Constant):
        return [("lit", node.value)] if isinstance(node.value, str) else [("ph", "value")]
    if isinstance(node, ast.JoinedStr):
        parts: list[Part] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(("lit", str(value.value)))
            else:
                parts.append(("ph", _name(value.value)))  # type: ignore[attr-defined]
        return parts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _expr(node.left, env, depth + 1) + _expr(node.right, env, depth + 1)
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and isinstance(node.left, ast.Constant)
        and isinstance(node.left.value, str)
    ):
        right = node.right
        args = list(right.elts) if isinstance(right, ast.Tuple) else [right]
        return _percent(node.left.value, args, env, depth)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        return _str_format(node.func.value.value, list(node.args), keywords, env, depth)
    if isinstance(node, ast.Name) and node.id in env:
        inner = dict(env)
        value = inner.pop(node.id)
        return _expr(value, inner, depth + 1)
    return [("ph", _name(node))]


def template(parts: list[Part]) -> tuple[str, str]:
    """(template text, its literal text); adjacent placeholders merged, whitespace collapsed."""
    out: list[str] = []
    literal = []
    last_ph = False
    for kind, text in parts:
        if kind == "lit":
            if not text:
                continue
            out.append(text.replace("{", "{{").replace("}", "}}"))
            literal.append(text)
            last_ph = False
        elif not last_ph:
            out.append("{" + text + "}")
            last_ph = True
    text = re.sub(r"\s+", " ", "".join(out)).strip()
    return _cut(text), re.sub(r"\s+", " ", " ".join(literal)).strip()


def _cut(text: str) -> str:
    """The first MAX_TEMPLATE characters, cut at a space outside a placeholder."""
    if len(text) <= MAX_TEMPLATE:
        return text
    head = text[:MAX_TEMPLATE]
    for i in range(len(head) - 1, 0, -1):
        if head[i] == " " and head[:i].count("{") - 2 * head[:i].count("{{") <= head[:i].count(
            "}"
        ) - 2 * head[:i].count("}}"):
            return head[:i].rstrip()
    return head


def keep(exception: str, literal: str, function: str, family: str) -> bool:
    """Whether a message is kept: enough literal text, start-up code, a refusal."""
    if len(literal) < MIN_LITERAL or len(re.findall(r"[A-Za-z]{2,}", literal)) < MIN_WORDS:
        return False
    if PER_STEP.search(function):
        return False
    if exception in ("AssertionError", "log.warning") and family == "engine":
        return False
    if exception == "AssertionError":
        return len(literal) >= MIN_ASSERT_LITERAL and ASSERT_WORDS.search(literal) is not None
    if exception == "log.warning":
        return WARNING_WORDS.search(literal) is not None
    return True


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------


def _assignments(func: ast.AST) -> list[tuple[int, str, ast.AST, bool]]:
    """(line, name, value, augmented) of string-like assignments to a plain name in a function."""
    found = []
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found.append((node.lineno, target.id, node.value, False))
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.op, ast.Add)
            and isinstance(node.target, ast.Name)
        ):
            found.append((node.lineno, node.target.id, node.value, True))
    return sorted(found, key=lambda f: f[0])


def _env_at(assigns: list, line: int) -> dict[str, ast.AST]:
    env: dict[str, ast.AST] = {}
    for lineno, name, value, augmented in assigns:
        if lineno >= line:
            break
        if augmented and name in env:
            env[name] = ast.BinOp(left=env[name], op=ast.Add(), right=value)
        elif not augmented:
            env[name] = value
    return env


def _exception_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _message_arg(call: ast.Call) -> ast.AST | None:
    if call.args:
        return call.args[0]
    for kw in call.keywords:
        if kw.arg in ("msg", "message", "detail"):
            return kw.value
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.stack: list[str] = []
        self.scopes: list[list] = [[]]
        self.found: list[tuple[str, list[Part], str]] = []  # (exception, parts, function)

    def _scope(self, node: ast.AST, name: str) -> None:
        self.stack.append(name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.scopes.append(_assignments(node))
            self.generic_visit(node)
            self.scopes.pop()
        else:
            self.generic_visit(node)
        self.stack.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scope(node, node.name)

    def _add(self, exception: str, node: ast.AST, line: int, extra: list | None = None) -> None:
        env = _env_at(self.scopes[-1], line)
        if extra and isinstance(node, (ast.Constant, ast.Name)):
            fmt = _expr(node, env)
            if len(fmt) == 1 and fmt[0][0] == "lit":
                parts = _percent(fmt[0][1], extra, env, 0)
            else:
                parts = fmt
        else:
            parts = _expr(node, env)
        self.found.append((exception, parts, ".".join(self.stack) or "<module>"))

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc
        if isinstance(exc, ast.Call):
            name = _exception_name(exc.func)
            arg = _message_arg(exc)
            if name and arg is not None and EXCEPTION_NAME.search(name):
                self._add(name, arg, node.lineno)
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        if node.msg is not None:
            self._add("AssertionError", node.msg, node.lineno)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in LOG_KINDS
            and node.args
            and LOGGERS.match(ast.unparse(func.value))
        ):
            self._add(LOG_KINDS[func.attr], node.args[0], node.lineno, list(node.args[1:]))
        self.generic_visit(node)


def read_file(path: Path, rel: str) -> Iterator[Message]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return
    visitor = _Visitor(rel)
    visitor.visit(tree)
    for exception, parts, function in visitor.found:
        text, literal = template(parts)
        yield Message(exception, text, literal, rel, function)


def release_messages(version: str) -> dict[tuple[str, str], Message]:
    root = source_dir(version)
    out: dict[tuple[str, str], Message] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith(START_UP) or rel.startswith(SKIP):
            continue
        for msg in read_file(path, rel):
            out.setdefault((msg.exception, msg.template), msg)
    return out


# --------------------------------------------------------------------------------------------
# Families and the table
# --------------------------------------------------------------------------------------------


def ranges(present: list[bool], releases: list[str]) -> str:
    """'0.10.0..0.14.1,0.20.0..0.33.0' for the releases marked present."""
    spans = []
    start = None
    for i, here in enumerate([*present, False]):
        if here and start is None:
            start = i
        elif not here and start is not None:
            first, last = releases[start], releases[i - 1]
            spans.append(first if first == last else f"{first}..{last}")
            start = None
    return ",".join(spans)


def build(releases: list[str], jobs: int = 1) -> tuple[list[dict], dict[str, int]]:
    seen: dict[tuple[str, str], list[bool]] = {}
    newest: dict[tuple[str, str], Message] = {}
    per_release: dict[str, int] = {}
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        found = list(pool.map(release_messages, releases))
    for i, version in enumerate(releases):
        count = 0
        for key, msg in found[i].items():
            family = family_of(msg.template, msg.file, msg.function)
            if not keep(msg.exception, msg.literal, msg.function, family):
                continue
            count += 1
            seen.setdefault(key, [False] * len(releases))[i] = True
            newest[key] = msg
        per_release[version] = count
        print(f"vLLM {version}: {count} messages", file=sys.stderr)
    rows = []
    for key, msg in newest.items():
        rows.append(
            {
                "exception": msg.exception,
                "template": msg.template,
                "file": msg.file,
                "function": msg.function,
                "releases": ranges(seen[key], releases),
                "family": family_of(msg.template, msg.file, msg.function),
            }
        )
    rows.sort(key=lambda r: (r["file"], r["function"], r["template"], r["exception"]))
    return rows, per_release


def known_releases() -> list[str]:
    data = tomllib.loads((KNOWLEDGE / "vllm_releases.toml").read_text())
    return sorted(data["releases"], key=version_key)


def write(rows: list[dict], releases: list[str], per_release: dict[str, int]) -> None:
    """One line per vLLM file: {function: [[exception, template, releases, family], ...]}."""
    about = {
        "about": (
            "vLLM start-up error messages, mined by scripts/extract_vllm_messages.py (do not "
            "edit by hand). files: {vLLM file: {function: [[exception, template, releases, "
            "family]]}}; template: the message's literal text with {name} for formatted parts "
            "({{ and }} are literal braces), cut at a word after "
            f"{MAX_TEMPLATE} characters; releases: ranges of the release list."
        ),
        "releases": releases,
        "per_release": per_release,
    }
    by_file: dict[str, dict[str, list]] = {}
    for r in rows:
        entry = [r["exception"], r["template"], r["releases"], r["family"]]
        by_file.setdefault(r["file"], {}).setdefault(r["function"], []).append(entry)
    lines = [
        f"{json.dumps(f)}:{json.dumps(funcs, ensure_ascii=False, separators=(',', ':'))}"
        for f, funcs in by_file.items()
    ]
    head = json.dumps(about, separators=(",", ":"))[1:-1]
    text = "{" + head + ',\n"files":{\n' + ",\n".join(lines) + "\n}}\n"
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(OUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="releases to read (default: every known one)")
    parser.add_argument("--stats", action="store_true", help="print counts, write nothing")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    args = parser.parse_args()
    releases = args.versions or known_releases()
    rows, per_release = build(releases, args.jobs)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["family"]] = counts.get(row["family"], 0) + 1
    print(f"{len(rows)} distinct messages; by family:", file=sys.stderr)
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {key:22} {n}", file=sys.stderr)
    if not args.stats:
        write(rows, releases, per_release)
        print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
