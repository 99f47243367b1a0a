"""`python -m framewatch …`: the console script, for environments where it is not on PATH."""

from framewatch.cli import main

if __name__ == "__main__":
    main()
