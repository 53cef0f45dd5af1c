"""compressed-tensors QuantizationArgs, parsed without torch or pydantic.

Mirrors compressed-tensors 0.17.0 quantization/quant_args.py (the version vLLM 0.33 pins):
same defaults, same strategy inference, same validation errors, unknown keys refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# compressed-tensors 0.17.0 QuantizationArgs fields (model_config extra="forbid").
KNOWN_FIELDS = frozenset(
    {
        "num_bits",
        "type",
        "symmetric",
        "group_size",
        "strategy",
        "block_structure",
        "dynamic",
        "actorder",
        "scale_dtype",
        "zp_dtype",
        "observer",
        "observer_kwargs",
    }
)
STRATEGIES = ("tensor", "channel", "group", "block", "token", "tensor_group", "attn_head")
ACTORDER_ALIASES = {"group": "group", "weight": "weight", "dynamic": "group", "static": "weight"}


class QuantArgsError(ValueError):
    """What compressed-tensors' pydantic validation would reject."""


@dataclass(frozen=True)
class QuantArgs:
    num_bits: int = 8
    type: str = "int"  # "int" | "float"
    symmetric: bool = True
    group_size: int | None = None
    strategy: str = "tensor"
    block_structure: tuple[int, int] | None = None
    dynamic: bool | str = False  # True, False or "local"
    actorder: str | None = None  # "group" | "weight" | None
    scale_dtype: str | None = None  # e.g. "torch.uint8", "torch.float8_e4m3fn"

    @property
    def is_float(self) -> bool:
        return self.type == "float"

    @property
    def is_int(self) -> bool:
        return self.type == "int"

    def describe(self) -> str:
        """Short human form, e.g. 'fp8 channel static' or 'int4 group128'."""
        base = f"{'fp' if self.is_float else 'int'}{self.num_bits}"
        strat = self.strategy
        if strat in ("group", "tensor_group") and self.group_size:
            strat = f"{strat}{self.group_size}"
        if strat == "block" and self.block_structure:
            strat = f"block{self.block_structure[0]}x{self.block_structure[1]}"
        dyn = {True: "dynamic", False: "static", "local": "local-dynamic"}.get(self.dynamic, "")
        return f"{base} {strat} {dyn}".strip() + ("" if self.symmetric else " asym")

    @classmethod
    def parse(cls, data: Any) -> QuantArgs:
        """Validate a QuantizationArgs object; raise QuantArgsError as compressed-tensors would."""
        if not isinstance(data, dict):
            raise QuantArgsError(f"QuantizationArgs must be an object, got {data!r}")
        extra = sorted(set(data) - KNOWN_FIELDS)
        if extra:
            raise QuantArgsError(
                f"1 validation error for QuantizationArgs: {extra[0]}: Extra inputs are not "
                "permitted"
            )
        num_bits = data.get("num_bits", 8)
        if not isinstance(num_bits, int) or isinstance(num_bits, bool):
            raise QuantArgsError(f"QuantizationArgs num_bits must be an integer, got {num_bits!r}")
        qtype = str(data.get("type", "int")).lower()
        if qtype not in ("int", "float"):
            raise QuantArgsError(f"'{qtype}' is not a valid QuantizationType")
        group_size = data.get("group_size")
        if group_size is not None and (not isinstance(group_size, int) or group_size < -1):
            raise QuantArgsError(
                f"Invalid group size {group_size}. Use group_size > 0 for strategy='group' and "
                "group_size = -1 for 'channel'"
            )
        strategy = data.get("strategy")
        if strategy is not None:
            strategy = str(strategy).lower()
            if strategy not in STRATEGIES:
                raise QuantArgsError(f"'{strategy}' is not a valid QuantizationStrategy")
        block = _block(data.get("block_structure"))
        dynamic = data.get("dynamic", False)
        if isinstance(dynamic, str):
            dynamic = dynamic.lower()
            if dynamic != "local":
                raise QuantArgsError(f"'{dynamic}' is not a valid DynamicType")
        elif not isinstance(dynamic, bool):
            raise QuantArgsError(f"dynamic must be true, false or 'local', got {dynamic!r}")
        actorder = _actorder(data.get("actorder"))
        strategy = _validate(strategy, group_size, block, actorder, dynamic)
        return cls(
            num_bits=num_bits,
            type=qtype,
            symmetric=bool(data.get("symmetric", True)),
            group_size=group_size,
            strategy=strategy,
            block_structure=block,
            dynamic=dynamic,
            actorder=actorder,
            scale_dtype=data.get("scale_dtype"),
        )


def _block(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            rows, cols = (int(x) for x in value.split("x", 1))
            if 0 < rows <= 2**20 and 0 < cols <= 2**20:
                return rows, cols
        except ValueError:
            pass
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(type(v) is int and 0 < v <= 2**20 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise QuantArgsError(f"Invalid block_structure '{value}'. Must be a list of ints [rows, cols].")


def _actorder(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "group"  # compressed-tensors: actorder=True means GROUP
    key = str(value).lower()
    if key not in ACTORDER_ALIASES:
        raise QuantArgsError(f"'{value}' is not a valid ActivationOrdering")
    return ACTORDER_ALIASES[key]


def _validate(
    strategy: str | None,
    group_size: int | None,
    block: tuple[int, int] | None,
    actorder: str | None,
    dynamic: bool | str,
) -> str:
    """compressed-tensors 0.17.0 QuantizationArgs.validate_model_after."""
    if strategy is None:
        if group_size is None:
            strategy = "tensor"
        elif group_size > 0:
            strategy = "group"
        elif group_size == -1:
            strategy = "channel"
        else:
            raise QuantArgsError(
                f"Invalid group size {group_size}. Use group_size > 0 for strategy='group' and "
                "group_size = -1 for 'channel'"
            )
    if strategy == "token" and not dynamic:
        raise QuantArgsError("Cannot perform static token quantization, please use `dynamic=True`")
    if strategy in ("group", "tensor_group") and (group_size is None or group_size <= 0):
        raise QuantArgsError(
            f"strategy {strategy} requires group_size to be set to a positive value"
        )
    if group_size is not None and group_size > 0 and strategy not in ("group", "tensor_group"):
        raise QuantArgsError("group_size requires strategy to be set to 'group'")
    if strategy == "block" and block is None:
        raise QuantArgsError("Block strategy requires block structure")
    if block is not None and strategy != "block":
        raise QuantArgsError("Block structure requires block strategy")
    if actorder == "group" and strategy not in ("group", "tensor_group"):
        raise QuantArgsError(
            "Must use group or tensor_group quantization strategy in order to apply group "
            "activation ordering"
        )
    if dynamic:
        if strategy not in ("token", "tensor", "tensor_group", "group"):
            raise QuantArgsError(
                "One of ('token', 'tensor', 'tensor_group', 'group') must be used for dynamic "
                "quant."
            )
        if dynamic == "local" and strategy != "tensor_group":
            raise QuantArgsError("local is only supported for strategy tensor_group")
    return strategy
