"""config.json text, diff, and atomic writing (in place or as an overlay folder)."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from servecheck.errors import WriteError
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

    Refuses to overwrite an existing .orig unless `force`, and never replaces one that is not a
    file or a link. A symlinked config.json (Hugging Face cache snapshots) is replaced by a
    regular file; the blob it pointed to is untouched. A failed write (WriteError) leaves
    config.json as it was, and removes a .orig this call created."""
    backup = cfg_path.with_name(cfg_path.name + ".orig")
    had_backup = backup.is_symlink() or backup.exists()
    if had_backup:
        if not (backup.is_symlink() or backup.is_file()):
            raise WriteError(
                f"{backup} exists and is not a file; not replacing it (config.json is unchanged)"
            )
        if not force:
            raise FixError(
                f"{backup} already exists (a previous fix?); move it away or pass --force to "
                "overwrite it"
            )
    try:
        original = cfg_path.read_bytes()
        mode = cfg_path.stat().st_mode & 0o777
    except OSError as exc:
        raise WriteError(f"cannot read {cfg_path}: {exc.strerror or exc}") from None
    _atomic_write(backup, original, mode)
    try:
        _atomic_write(cfg_path, new_text.encode("utf-8"), mode)
    except WriteError:
        if not had_backup:
            with contextlib.suppress(OSError):
                backup.unlink()
        raise
    return WriteResult(cfg_path, backup=backup)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all (temp file, fsync, rename); WriteError when the
    folder is read-only, the disk full or the file too large; `path` is then unchanged."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}; it is unchanged") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _resolved_out(out: Path, model_folder: Path) -> Path:
    """--out with every link resolved, refused when it is, holds or lies inside the model
    folder (also resolved): writing there could replace the weights with links to themselves."""
    src = model_folder.resolve()
    try:
        out_abs = out.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise FixError(f"--out {out}: cannot resolve the path ({exc})") from None
    if out_abs == src:
        raise FixError(f"--out {out} is the model folder {src}; use --write to change it in place")
    if src in out_abs.parents:
        raise FixError(f"--out {out} lies inside the model folder {src}; choose a folder outside")
    if out_abs in src.parents:
        raise FixError(f"--out {out} contains the model folder {src}; choose another folder")
    return out_abs


def write_overlay(cfg_path: Path, out: Path, new_text: str, force: bool = False) -> WriteResult:
    """An overlay folder vLLM can load: the new config.json plus symlinks to every other file
    of the checkpoint folder (shards, index, tokenizer, generation config).

    With `force`, links and the config.json of an earlier overlay are replaced; nothing else
    in `out` ever is (a file or folder of the same name as a checkpoint file is refused)."""
    src = cfg_path.parent.resolve()
    out_abs = _resolved_out(out, cfg_path.parent)
    if out_abs.exists():
        if not out_abs.is_dir():
            raise FixError(f"{out} exists and is not a folder")
        if any(out_abs.iterdir()) and not force:
            raise FixError(f"{out} is not empty; pass --force to replace its links and config")
    skip = {cfg_path.name, "config.json", "config.json.orig"}
    entries = [e for e in sorted(src.iterdir()) if e.name not in skip and e.name[0] != "."]
    for entry in entries:
        link = out_abs / entry.name
        if link.exists() and not link.is_symlink():
            raise FixError(f"{link} exists and is not a link an overlay made; not replacing it")
    config = out_abs / "config.json"
    if config.exists() and not config.is_symlink() and not config.is_file():
        raise FixError(f"{config} exists and is not a file; not replacing it")
    links = []
    try:
        out_abs.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            link = out_abs / entry.name
            if link.is_symlink():
                link.unlink()
            os.symlink(src / entry.name, link)
            links.append(entry.name)
    except OSError as exc:
        raise WriteError(
            f"cannot write the overlay {out}: {exc.strerror or exc}; the model folder is unchanged"
        ) from None
    _atomic_write(config, new_text.encode("utf-8"))
    return WriteResult(config, links=tuple(links))


def write_hub_overlay(
    out: Path, original_text: str, new_text: str, repo_id: str, commit: str, force: bool = False
) -> WriteResult:
    """For a model read from the Hub (its weights are not here): a folder with the corrected
    config.json, hf_overrides.json (the top-level keys that changed) and a README saying how
    to use them with vLLM. Nothing is written to the Hub or the Hugging Face cache."""
    try:
        out_abs = out.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise FixError(f"--out {out}: cannot resolve the path ({exc})") from None
    if out_abs.exists() and not out_abs.is_dir():
        raise FixError(f"{out} exists and is not a folder")
    names = ("config.json", "hf_overrides.json", "README.md")
    if out_abs.exists() and not force and any((out_abs / n).exists() for n in names):
        raise FixError(f"{out} already holds a fix; pass --force to replace it")
    for name in names:
        target = out_abs / name
        if target.exists() and not target.is_symlink() and not target.is_file():
            raise FixError(f"{target} exists and is not a file; not replacing it")
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
    try:
        out_abs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {out}: {exc.strerror or exc}") from None
    _atomic_write(out_abs / "hf_overrides.json", (over_text + "\n").encode("utf-8"))
    _atomic_write(out_abs / "README.md", readme.encode("utf-8"))
    _atomic_write(out_abs / "config.json", new_text.encode("utf-8"))
    return WriteResult(out_abs / "config.json")
