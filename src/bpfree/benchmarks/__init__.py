"""The field's published tables, reproduced by one command each.

    python -m bpfree.benchmarks biotorch_lenet            # reduced protocol (fits an hour on 2 CPU cores)
    python -m bpfree.benchmarks dfc_fc --full             # the paper's whole protocol (hparams/benchmarks/)

Each runs as ordinary resumable grid searches (records, growth, `bpfree.results` apply) and writes
``docs/benchmarks/NAME.md``: ours beside the paper's, chosen on validation only (`compare`), the protocol, what
differs and why, wall and CPU time, and the command. Offline, point ``BPFREE_DATA_DIR`` at IDX folders.
"""

from bpfree.benchmarks.specs import TABLES, Table

__all__ = ["TABLES", "Table"]
