"""Findings: the rule registry, one Rule class per code (rules/), and the collector.

The bottom layer: every stage (quant, checks, hardware, plan) may report findings; nothing
here imports a stage.
"""
