"""python -m xlconv."""

from xlconv.cli import run

run()
