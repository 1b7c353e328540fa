"""Figures as files: matplotlib on the Agg backend (no display on these machines), PNGs written atomically."""

from bpfree import io


def pyplot():
    """matplotlib.pyplot on the Agg backend, selected before pyplot is first imported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, dpi=110):
    """Saves a matplotlib figure as PNG at `path` atomically (`bpfree.io.write_atomic`)."""
    return io.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), ".png")
