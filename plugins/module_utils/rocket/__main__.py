"""`python -m rocket`: the command line, for hosts where only the engine copy exists."""

from .cli.main import main

main()
