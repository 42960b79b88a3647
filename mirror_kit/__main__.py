"""Entry point for ``python -m mirror_kit``."""

import sys

from .cli import main

sys.exit(main())
