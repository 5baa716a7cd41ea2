"""``python -m archmon``."""

import sys

from archmon.cli import main

sys.exit(main())
