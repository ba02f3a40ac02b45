"""`python -m rocket`: the command line, for hosts where only the engine copy exists."""

from .cli.entry import main

# Guarded so that importing the package's modules one by one (ansible-test's import check) runs nothing.
if __name__ == "__main__":
    main()
