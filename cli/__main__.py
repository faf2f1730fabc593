"""``python -m cli``: the ``accelsim`` command."""
import sys

from cli.main import main

sys.exit(main())
