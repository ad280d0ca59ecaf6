"""``python -m unlearning``: the same command as the ``unlearning`` console script."""

from unlearning.cli import run

if __name__ == "__main__":
    run()
