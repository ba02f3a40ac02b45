"""The `rocket` command line: one file per verb, `main.py` maps errors to exit codes."""
