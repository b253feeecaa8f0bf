"""``python -m crmkit``: the ``crmkit`` command."""

from __future__ import annotations

import sys

from crmkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
