"""`python -m streaming` is `lectern serve`."""

from streaming.cli import main

raise SystemExit(main(["serve"]))
