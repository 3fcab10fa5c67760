"""python -m xlconv."""

import sys

from xlconv.cli import main

sys.exit(main())
