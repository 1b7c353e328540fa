"""The one error type of bpfree.datasets."""


class DatasetError(ValueError):
    """A dataset that cannot be named, found, prepared or read; the message says which and why."""
