"""Architecture registry: vLLM model class name -> inventory builder."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from servecheck.errors import InputError
from servecheck.model.arch import deepseek, dense, gpt_oss, moe
from servecheck.model.arch.generic import build_from_tensors
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Inventory
from servecheck.source.safetensors import TensorInfo

# vLLM 0.33 model_executor/models/registry.py maps these architectures to the classes mirrored.
BUILDERS: dict[str, Callable[[ModelConfig], Inventory]] = {
    "LlamaForCausalLM": dense.build,
    "MistralForCausalLM": dense.build,  # registry: MistralForCausalLM -> llama.LlamaForCausalLM
    "Qwen2ForCausalLM": dense.build,
    "Qwen3ForCausalLM": dense.build,
    "Qwen3MoeForCausalLM": moe.build_qwen3_moe,
    "MixtralForCausalLM": moe.build_mixtral,
    "Glm4MoeForCausalLM": moe.build_glm4_moe,
    "DeepseekV2ForCausalLM": deepseek.build,
    "DeepseekV3ForCausalLM": deepseek.build,
    "GptOssForCausalLM": gpt_oss.build,
}


def is_modelled(architecture: str) -> bool:
    return architecture in BUILDERS


def build_inventory(cfg: ModelConfig, tensors: Mapping[str, TensorInfo] | None) -> Inventory:
    """The module inventory for a config, or one derived from tensor names for unknown models."""
    builder = BUILDERS.get(cfg.architecture)
    if builder is not None:
        return builder(cfg)
    if tensors:
        return build_from_tensors(cfg.architecture, tensors)
    raise InputError(
        f"{cfg.architecture} is not an architecture servecheck models, and without safetensors "
        "files there are no tensor names to derive its modules from; pass the checkpoint folder"
    )
