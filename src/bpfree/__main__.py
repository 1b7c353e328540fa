"""`python -m bpfree EXPERIMENT_DIR [flags]`: the grid search CLI (see bpfree.tuning.cli)."""

from bpfree.tuning.cli import run

if __name__ == "__main__":
    run()
