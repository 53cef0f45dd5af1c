"""One module per CLI command; cli.py registers them in this order.

Each module defines NAME, HELP (one line), DESCRIPTION, EPILOG (examples), TAKES_VLLM_ARGS,
add_arguments(parser) and run(args) -> exit code. Only argparse is imported at module level.
"""

from servecheck.commands import check, compare, explain, fix, gpus, plan, rules, smoke

COMMANDS = (check, plan, smoke, fix, compare, explain, gpus, rules)
