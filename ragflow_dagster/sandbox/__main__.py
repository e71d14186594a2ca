"""``python -m ragflow_dagster.sandbox``."""

import sys

from .cli import main

sys.exit(main())
