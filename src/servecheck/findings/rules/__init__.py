"""Importing this package registers every rule."""

from servecheck.findings.rules import (  # noqa: F401
    architecture,
    checkpoint,
    dtype,
    formats,
    hardware,
    memory,
    parallel,
    quant_config,
    quant_methods,
    resolution,
    version,
    wna16,
)
