"""Open a local checkpoint: a folder (config.json + safetensors shards) or a config.json alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servecheck.errors import InputError
from servecheck.source.safetensors import HeaderTruncated, ShardHeader, TensorInfo, read_header

INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class ShardProblem:
    """A shard that could not be read, or whose file is shorter than its header says.

    kind: "header_truncated" (the file ends inside its header), "data_truncated" (it ends
    inside the data the header describes) or "header_invalid" (anything else).
    """

    file: str
    message: str
    kind: str = "header_invalid"


@dataclass(frozen=True)
class Checkpoint:
    """Everything servecheck knows about a checkpoint before interpreting it.

    `tensors` is None when only a config was given: the report then says tensors were inferred.
    """

    location: str
    config: dict
    tensors: Mapping[str, TensorInfo] | None = None
    shards: tuple[ShardHeader, ...] = ()
    shard_problems: tuple[ShardProblem, ...] = ()
    # model.safetensors.index.json: weight_map (tensor -> file), or None when absent.
    index_weight_map: Mapping[str, str] | None = None
    # Shard files the index names that are not on disk (vLLM raises FileNotFoundError).
    index_missing_files: tuple[str, ...] = ()
    # Shard files on disk that the index does not name (vLLM skips them).
    files_outside_index: tuple[str, ...] = ()
    # Extra quantization files some producers ship beside config.json (ModelOpt).
    hf_quant_config: dict | None = None
    duplicate_tensors: tuple[str, ...] = field(default=())

    @property
    def config_only(self) -> bool:
        return self.tensors is None


def read_json(path: Path, what: str) -> dict:
    """Read a JSON object from a file, turning every failure into a one-sentence InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return data


def open_local(path: str | Path) -> Checkpoint:
    """Open a checkpoint folder or a config.json file. Reads headers only, never weight data."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_file():
        config = read_json(path, "config")
        return Checkpoint(
            location=str(path),
            config=config,
            hf_quant_config=_maybe_json(path.parent / "hf_quant_config.json"),
        )
    config = read_json(path / "config.json", "config.json")
    shard_files = sorted(p for p in path.glob("*.safetensors") if p.is_file())
    hf_quant = _maybe_json(path / "hf_quant_config.json")
    if not shard_files and not (path / INDEX_NAME).exists():
        # A folder with only a config: treat like a config path.
        return Checkpoint(location=str(path), config=config, hf_quant_config=hf_quant)

    weight_map, missing, outside = None, (), ()
    index_path = path / INDEX_NAME
    if index_path.exists():
        index = read_json(index_path, INDEX_NAME)
        raw_map = index.get("weight_map")
        if not isinstance(raw_map, dict):
            raise InputError(f"{index_path} has no weight_map object")
        weight_map = {str(k): str(v) for k, v in raw_map.items()}
        named = set(weight_map.values())
        on_disk = {p.name for p in shard_files}
        missing = tuple(sorted(named - on_disk))
        outside = tuple(sorted(on_disk - named))
        # vLLM 0.33 model_loader/weight_utils.py filter_duplicate_safetensors_files:
        # with an index, only the files it names are loaded.
        shard_files = [p for p in shard_files if p.name in named]

    shards, problems = _read_shards(shard_files)
    tensors: dict[str, TensorInfo] = {}
    duplicates: list[str] = []
    for shard in shards:
        for t in shard.tensors:
            if t.name in tensors:
                duplicates.append(t.name)
            tensors[t.name] = t
    return Checkpoint(
        location=str(path),
        config=config,
        tensors=tensors,
        shards=tuple(shards),
        shard_problems=tuple(problems),
        index_weight_map=weight_map,
        index_missing_files=missing,
        files_outside_index=outside,
        hf_quant_config=hf_quant,
        duplicate_tensors=tuple(duplicates),
    )


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
        if shard.is_truncated:
            problems.append(
                ShardProblem(
                    file.name,
                    f"{file.name}: file has {shard.file_size:,} bytes but its header describes "
                    f"{8 + shard.header_bytes + shard.data_bytes_declared:,}; the download is "
                    "incomplete",
                    "data_truncated",
                )
            )
        shards.append(shard)
    return shards, problems


def _maybe_json(path: Path) -> dict | None:
    return read_json(path, path.name) if path.is_file() else None
