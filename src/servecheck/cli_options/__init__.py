"""The command line's options, shared by the command modules: argparse helpers and the
parsing of values (nothing heavy is imported at module level)."""
