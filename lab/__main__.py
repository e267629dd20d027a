"""``python -m lab`` runs the CLI (this is what ``ray job submit`` calls)."""

from lab.cli.main import main

if __name__ == "__main__":
    main()
