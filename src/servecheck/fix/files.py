"""config.json text, diff, and atomic writing (in place or as an overlay folder)."""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from servecheck.fix.facts import FixError

# config.json text, diff, writing


def render_config(original: str, config: dict) -> str:
    """config as JSON text in the original file's layout (indent, key order, ASCII escaping)
    when the original round-trips, so the diff shows only the ignore list."""
    try:
        parsed = json.loads(original)
    except json.JSONDecodeError:
        parsed = None
    trailing = "\n" if original.endswith("\n") else ""
    if parsed is not None:
        for indent in (2, 4, "\t", 1, 3, None):
            for ascii_ in (False, True):
                if json.dumps(parsed, indent=indent, ensure_ascii=ascii_) + trailing == original:
                    return json.dumps(config, indent=indent, ensure_ascii=ascii_) + trailing
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def unified_diff(original: str, new: str, name: str = "config.json") -> str:
    return "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )


def config_path(model: str | Path) -> Path:
    path = Path(model)
    return path / "config.json" if path.is_dir() else path


@dataclass(frozen=True)
class WriteResult:
    path: Path  # the config.json written
    backup: Path | None = None  # config.json.orig (--write)
    links: tuple[str, ...] = ()  # names linked into an overlay (--out)


def write_in_place(cfg_path: Path, new_text: str, force: bool = False) -> WriteResult:
    """Replace config.json atomically (temp file + os.replace), keeping config.json.orig.

    Refuses to overwrite an existing .orig unless `force`. A symlinked config.json (Hugging
    Face cache snapshots) is replaced by a regular file; the blob it pointed to is untouched.
    """
    backup = cfg_path.with_name(cfg_path.name + ".orig")
    if backup.exists() and not force:
        raise FixError(
            f"{backup} already exists (a previous fix?); move it away or pass --force to "
            "overwrite it"
        )
    original = cfg_path.read_bytes()
    mode = cfg_path.stat().st_mode & 0o777
    _atomic_write(backup, original, mode)
    _atomic_write(cfg_path, new_text.encode("utf-8"), mode)
    return WriteResult(cfg_path, backup=backup)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_overlay(cfg_path: Path, out: Path, new_text: str, force: bool = False) -> WriteResult:
    """An overlay folder vLLM can load: the new config.json plus symlinks to every other file
    of the checkpoint folder (shards, index, tokenizer, generation config)."""
    src = cfg_path.parent.resolve()
    out_abs = Path(os.path.abspath(out))
    if out_abs == src:
        raise FixError("--out must be another folder than the checkpoint's (use --write)")
    if out_abs.exists():
        if not out_abs.is_dir():
            raise FixError(f"{out} exists and is not a folder")
        if any(out_abs.iterdir()) and not force:
            raise FixError(f"{out} is not empty; pass --force to replace its links and config")
    out_abs.mkdir(parents=True, exist_ok=True)
    links = []
    skip = {cfg_path.name, "config.json", "config.json.orig"}
    for entry in sorted(src.iterdir()):
        if entry.name in skip or entry.name.startswith("."):
            continue
        if entry.resolve() == out_abs.resolve():
            continue
        link = out_abs / entry.name
        if link.is_symlink() or link.exists():
            if not force:
                raise FixError(f"{link} exists; pass --force to replace it")
            if link.is_dir() and not link.is_symlink():
                raise FixError(f"{link} is a folder; not replacing it")
            link.unlink()
        os.symlink(os.path.abspath(cfg_path.parent / entry.name), link)
        links.append(entry.name)
    _atomic_write(out_abs / "config.json", new_text.encode("utf-8"))
    return WriteResult(out_abs / "config.json", links=tuple(links))


def write_hub_overlay(
    out: Path, original_text: str, new_text: str, repo_id: str, commit: str, force: bool = False
) -> WriteResult:
    """For a model read from the Hub (its weights are not here): a folder with the corrected
    config.json, hf_overrides.json (the top-level keys that changed) and a README saying how
    to use them with vLLM. Nothing is written to the Hub or the Hugging Face cache."""
    out_abs = Path(os.path.abspath(out))
    if out_abs.exists() and not out_abs.is_dir():
        raise FixError(f"{out} exists and is not a folder")
    names = ("config.json", "hf_overrides.json", "README.md")
    if out_abs.exists() and not force and any((out_abs / n).exists() for n in names):
        raise FixError(f"{out} already holds a fix; pass --force to replace it")
    old, new = json.loads(original_text), json.loads(new_text)
    # vLLM sets each --hf-overrides key on the config as given (a dict value replaces the
    # whole dict): vLLM 0.33 config/model.py _apply_dict_overrides, 0.11 config.update().
    overrides = {k: v for k, v in new.items() if old.get(k) != v}
    over_text = json.dumps(overrides, separators=(",", ":"))
    readme = f"""# {repo_id}: corrected config.json

Written by `servecheck fix` for commit {commit}. Only the configuration is here; the
weights stay on the Hub. Use it with vLLM in either of two ways:

1. Keep the weights on the Hub and override the changed keys:

       vllm serve {repo_id} --revision {commit} --hf-overrides "$(cat hf_overrides.json)"

2. Download the weights beside this config.json and serve the folder:

       hf download {repo_id} --revision {commit} --exclude config.json --local-dir .
       vllm serve .
"""
    out_abs.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_abs / "hf_overrides.json", (over_text + "\n").encode("utf-8"))
    _atomic_write(out_abs / "README.md", readme.encode("utf-8"))
    _atomic_write(out_abs / "config.json", new_text.encode("utf-8"))
    return WriteResult(out_abs / "config.json")
