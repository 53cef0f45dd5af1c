"""Open a local checkpoint: a folder (config.json + safetensors shards) or a config.json alone."""

from __future__ import annotations

from pathlib import Path

from servecheck.errors import InputError
from servecheck.source import jsonin
from servecheck.source.checkpoint import (
    INDEX_NAME,
    SIDE_FILES,
    Checkpoint,
    ShardProblem,
    Source,
    assemble,
    index_weight_map,
    other_weight_files,
    shard_selection,
    truncation_problem,
)
from servecheck.source.gguf import gguf_config, is_gguf
from servecheck.source.gguf import read_header as read_gguf
from servecheck.source.jsonin import MAX_CONFIG_BYTES, MAX_INDEX_BYTES, MAX_SIDE_FILE_BYTES
from servecheck.source.quantcheck import check_quant_configs
from servecheck.source.safetensors import HeaderTruncated, ShardHeader, read_header

__all__ = ["INDEX_NAME", "Checkpoint", "ShardProblem", "open_local", "read_json"]


def read_json(path: Path, what: str, limit: int = MAX_CONFIG_BYTES) -> dict:
    """Read a JSON object from a file, turning every failure into a one-sentence InputError
    (checked at the edge: source/jsonin.py)."""
    return jsonin.read_json(path, what, limit)


def parse_json(text: str | bytes, what: str) -> dict:
    """A JSON object from text, or an InputError naming `what`."""
    return jsonin.parse_json(text, what)


def open_local(path: str | Path, source: Source | None = None) -> Checkpoint:
    """Open a checkpoint folder or a config.json file. Reads headers only, never weight data.

    `source` says where the folder came from when it is not the user's own path (the HF cache).
    """
    path = Path(path)
    if "\x00" in str(path):
        raise InputError(f"{str(path)!r} contains a NUL byte; no file has one")
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    gguf = _gguf_file(path)
    if gguf is not None:
        return open_gguf(gguf, source)
    if path.suffix == ".safetensors" and path.is_file():
        raise InputError(
            f"{path} is a safetensors shard; give the folder that holds it and its config.json"
        )
    folder = path.parent if path.is_file() else path
    config_file = path if path.is_file() else path / "config.json"
    source = source or Source(kind="local", path=str(path), config_file=config_file)
    config = read_json(config_file, "config" if path.is_file() else "config.json")
    side = side_files(folder)
    check_quant_configs(config, side)
    names = [p.name for p in folder.iterdir() if p.is_file()] if path.is_dir() else []
    shard_names = [n for n in names if n.endswith(".safetensors")]
    if path.is_file() or (not shard_names and not (path / INDEX_NAME).exists()):
        # A config alone, or a folder with only a config: tensors are inferred.
        return Checkpoint(
            location=str(path),
            config=config,
            hf_quant_config=side.get("hf_quant_config.json"),
            side_files=side,
            other_weight_files=other_weight_files(names),
            source=source,
        )
    weight_map = None
    if (path / INDEX_NAME).exists():
        index = jsonin.read_json(path / INDEX_NAME, INDEX_NAME, MAX_INDEX_BYTES, check=False)
        weight_map = index_weight_map(index, str(path / INDEX_NAME))
    files, missing, outside = shard_selection(shard_names, weight_map)
    shards, problems = _read_shards([path / n for n in files])
    return assemble(
        str(path),
        config,
        side,
        weight_map=weight_map,
        missing=missing,
        outside=outside,
        shards=shards,
        problems=problems,
        source=source,
    )


def _gguf_file(path: Path) -> Path | None:
    """The GGUF file MODEL names: the file itself, or the one .gguf file of a folder that has
    no config.json (vLLM takes the file's path, never the folder's)."""
    if path.is_file():
        return path if is_gguf(path) else None
    if (path / "config.json").exists():
        return None
    files = sorted(p for p in path.glob("*.gguf") if p.is_file())
    if len(files) > 1:
        names = ", ".join(p.name for p in files[:4]) + (" ..." if len(files) > 4 else "")
        raise InputError(
            f"{path} holds {len(files)} GGUF files ({names}); vLLM loads one GGUF file: "
            "pass its path"
        )
    return files[0] if files else None


def open_gguf(path: Path, source: Source | None = None) -> Checkpoint:
    """A GGUF file: its header, and the config transformers builds from its metadata."""
    header = read_gguf(path)
    return Checkpoint(
        location=str(path),
        config=gguf_config(header),
        source=source or Source(kind="local", path=str(path)),
        gguf=header,
    )


def side_files(folder: Path) -> dict[str, dict]:
    """Every SIDE_FILES file in `folder`, parsed."""
    return {
        n: read_json(folder / n, n, MAX_SIDE_FILE_BYTES)
        for n in SIDE_FILES
        if (folder / n).exists()  # a dangling link is absent, as for vLLM's os.path.exists
    }


def _read_shards(files: list[Path]) -> tuple[list[ShardHeader], list[ShardProblem]]:
    shards: list[ShardHeader] = []
    problems: list[ShardProblem] = []
    for file in files:
        try:
            shard = read_header(file)
        except HeaderTruncated as exc:
            problems.append(ShardProblem(file.name, str(exc), "header_truncated"))
            continue
        except InputError as exc:
            problems.append(ShardProblem(file.name, str(exc)))
            continue
        problem = truncation_problem(shard)
        if problem is not None:
            problems.append(problem)
        shards.append(shard)
    return shards, problems
