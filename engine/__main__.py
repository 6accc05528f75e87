"""`python -m engine …` is the `crosscheck` command (engine.cli)."""

from engine.cli import main

if __name__ == "__main__":
    main(prog_name="crosscheck")
