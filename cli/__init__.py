"""The ``accelsim`` command line: one module per subcommand, each only calling the Python API
(:mod:`faults.api`).

Each command module defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int``; :mod:`cli.main` lists the modules.
"""
