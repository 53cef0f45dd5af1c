"""Importing this package registers every rule."""

from servecheck.findings.rules import (  # noqa: F401
    checkpoint,
    hardware,
    memory,
    parallel,
    quant_config,
    resolution,
)
