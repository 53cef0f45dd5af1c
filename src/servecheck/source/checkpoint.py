"""The Checkpoint record every reader produces (local folder, HF cache snapshot, Hub), and the
one function that assembles it from a config, side files, an index and shard headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from servecheck.errors import InputError
from servecheck.source.gguf import GgufHeader
from servecheck.source.safetensors import ShardHeader, TensorInfo

INDEX_NAME = "model.safetensors.index.json"
# Files beside config.json that vLLM reads when present: the quantization configs of
# ModelOpt, AWQ and GPTQ (vLLM 0.33 model_executor/layers/quantization/{modelopt,auto_awq,
# auto_gptq}.py get_config_filenames) and the tokenizer's (vLLM 0.33 transformers_utils/
# config.py try_get_tokenizer_config: model_max_length).
SIDE_FILES = (
    "hf_quant_config.json",
    "quant_config.json",
    "quantize_config.json",
    "tokenizer_config.json",
)
# Weight formats other than safetensors, named when a checkpoint has no safetensors files.
OTHER_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".npz")


@dataclass(frozen=True)
class Source:
    """Where a checkpoint was read from.

    kind: "local" (a path given by the user), "hf-cache" (a complete snapshot in the Hugging
    Face cache) or "hub" (config and safetensors headers read from the Hub, no weights).
    """

    kind: str
    path: str | None = None  # the local folder or file read (the snapshot for hf-cache)
    repo_id: str | None = None
    revision: str | None = None  # as asked; None means the repo's default branch
    commit: str | None = None  # the commit sha the revision resolved to
    config_file: Path | None = None  # a local copy of config.json (the HF cache's for Hub)
    offline: bool = False  # read without any request (header cache or HF cache only)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "offline": self.offline,
        }

    def describe(self) -> str:
        """One line for people: where the files came from."""
        if self.kind == "local":
            return str(self.path)
        rev = f"@{self.revision}" if self.revision else ""
        where = "Hugging Face cache" if self.kind == "hf-cache" else "Hub (headers only)"
        if self.kind == "hub" and self.offline:
            where = "Hub, from servecheck's header cache"
        commit = f", commit {self.commit[:12]}" if self.commit else ""
        return f"{self.repo_id}{rev} ({where}{commit})"


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
    # Every SIDE_FILES file present, parsed (hf_quant_config.json included).
    side_files: Mapping[str, dict] = field(default_factory=dict)
    # Weight files in another format than safetensors (.bin, .gguf, ...), when there are no
    # safetensors files: their tensors are then inferred from the config.
    other_weight_files: tuple[str, ...] = ()
    source: Source | None = None
    # A GGUF file (vLLM 0.10-0.23): its header; the config is the one transformers builds
    # from the metadata.
    gguf: GgufHeader | None = None

    @property
    def config_only(self) -> bool:
        return self.tensors is None

    def weights_note(self) -> str | None:
        """Says so when the weights exist only in another format than safetensors."""
        files = self.other_weight_files
        if not self.config_only or not files:
            return None
        shown = ", ".join(files[:3]) + (f", ... ({len(files)} files)" if len(files) > 3 else "")
        return (
            f"no safetensors files, only {shown}: servecheck reads safetensors headers, so the "
            "tensors are inferred from config.json"
        )


def other_weight_files(names: Iterable[str]) -> tuple[str, ...]:
    """The names among `names` that hold weights in a format other than safetensors."""
    return tuple(sorted(n for n in names if n.lower().endswith(OTHER_WEIGHT_SUFFIXES)))


def index_weight_map(index: dict, where: str) -> dict[str, str]:
    """The weight_map of a parsed model.safetensors.index.json."""
    raw_map = index.get("weight_map")
    if not isinstance(raw_map, dict):
        raise InputError(f"{where} has no weight_map object")
    # JSON object keys are strings already; values must be file names (vLLM 0.33
    # model_loader/weight_utils.py filter_duplicate_safetensors_files joins them to the folder:
    # anything but a string fails there). One C-level pass over the values (88k for GLM-4.5).
    if set(map(type, raw_map.values())) <= {str}:
        return raw_map
    name, value = next((k, v) for k, v in raw_map.items() if type(v) is not str)
    raise InputError(
        f"{where}: weight_map[{name[:200]!r}] is {_short(value)}; expected a shard file name"
    )


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, (list, dict)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def shard_selection(
    present: Iterable[str], weight_map: Mapping[str, str] | None
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    """(files to read, files the index names that are absent, files outside the index)."""
    present = sorted(present)
    if weight_map is None:
        return present, (), ()
    named = set(weight_map.values())
    on_disk = set(present)
    # vLLM 0.33 model_loader/weight_utils.py filter_duplicate_safetensors_files:
    # with an index, only the files it names are loaded.
    return (
        [n for n in present if n in named],
        tuple(sorted(named - on_disk)),
        tuple(sorted(on_disk - named)),
    )


def assemble(
    location: str,
    config: dict,
    side_files: Mapping[str, dict],
    *,
    weight_map: Mapping[str, str] | None,
    missing: tuple[str, ...],
    outside: tuple[str, ...],
    shards: list[ShardHeader],
    problems: list[ShardProblem],
    source: Source,
) -> Checkpoint:
    """The Checkpoint of a checkpoint with safetensors files (shards in file-name order)."""
    tensors: dict[str, TensorInfo] = {}
    for shard in shards:
        tensors.update(zip(map(_NAME, shard.tensors), shard.tensors, strict=True))
    duplicates: list[str] = []
    if len(tensors) < sum(len(shard.tensors) for shard in shards):
        # some name is stored twice: list each repeat, in file order, the last one kept
        tensors.clear()
        for shard in shards:
            for t in shard.tensors:
                if t.name in tensors:
                    duplicates.append(t.name)
                tensors[t.name] = t
    return Checkpoint(
        location=location,
        config=config,
        tensors=tensors,
        shards=tuple(shards),
        shard_problems=tuple(problems),
        index_weight_map=weight_map,
        index_missing_files=missing,
        files_outside_index=outside,
        hf_quant_config=side_files.get("hf_quant_config.json"),
        duplicate_tensors=tuple(duplicates),
        side_files=dict(side_files),
        source=source,
    )


_NAME = itemgetter(0)  # TensorInfo.name


def truncation_problem(shard: ShardHeader) -> ShardProblem | None:
    """A data_truncated problem when the file is shorter than its header describes."""
    if not shard.is_truncated:
        return None
    name = shard.path.name
    return ShardProblem(
        name,
        f"{name}: file has {shard.file_size:,} bytes but its header describes "
        f"{8 + shard.header_bytes + shard.data_bytes_declared:,}; the download is incomplete",
        "data_truncated",
    )
