"""`python -m whisperbatch` runs the CLI."""

from .cli import main

main()
