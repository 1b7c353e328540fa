"""`python -m bpfree.results ...`: see `bpfree.results.cli`."""

import sys

from bpfree.results.cli import main

if __name__ == "__main__":
    sys.exit(main())
