"""Architecture dispatch: the record of an architecture -> the code that builds its inventory.

Exact records come from knowledge/architectures.toml; architectures without one are derived
from the checkpoint's tensor names when there are tensors, else from config.json conventions
(the generic record), and the report says the result is approximate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping

from servecheck.model.arch import decoder, deepseek, dense, gpt_oss, moe
from servecheck.model.arch.generic import build_from_tensors
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Inventory
from servecheck.model.records import Record, generic, record_for
from servecheck.source.safetensors import TensorInfo

# Layouts whose code predates the records (their records say `layout = ...`).
LAYOUTS: dict[str, Callable[[ModelConfig], Inventory]] = {
    "dense": dense.build,
    "qwen3_moe": moe.build_qwen3_moe,
    "mixtral": moe.build_mixtral,
    "glm4_moe": moe.build_glm4_moe,
    "deepseek": deepseek.build,
    "gpt_oss": gpt_oss.build,
}


def is_modelled(architecture: str) -> bool:
    return record_for(architecture) is not None


def build_from_record(
    cfg: ModelConfig,
    record: Record,
    names: Collection[str] | None = None,
    release: str | None = None,
) -> Inventory:
    builder = LAYOUTS.get(record.layout)
    if builder is None:
        return decoder.build(cfg, record, names, release)
    inventory = builder(cfg)
    if record.exact:
        return inventory
    # a record borrowing a close layout: its inventory is approximate and says what is missing
    return dataclasses.replace(
        inventory, derivation="config", notes=(*inventory.notes, *record.notes)
    )


def build_inventory(
    cfg: ModelConfig,
    tensors: Mapping[str, TensorInfo] | None,
    served_as: str | None = None,
    release: str | None = None,
) -> Inventory:
    """The module inventory for a config.

    served_as: the vLLM class that serves the architecture in the chosen release (an alias
    such as InternLM3ForCausalLM -> LlamaForCausalLM finds its record through it).
    release: the vLLM release mirrored, where a record's layout changed between releases."""
    record = record_for(cfg.architecture) or (record_for(served_as) if served_as else None)
    if record is not None:
        return build_from_record(cfg, record, tensors.keys() if tensors else None, release)
    if tensors:
        return build_from_tensors(cfg.architecture, tensors)
    return decoder.build(cfg, generic())
