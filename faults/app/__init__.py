"""Command-line layer: one module per ``accelsim`` subcommand.

Each command module defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int``; ``faults.cli`` lists the modules.
"""
