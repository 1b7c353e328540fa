"""Learning rules, one module each, registered by name (see `bpfree.rules.registry`)."""

from bpfree.rules import bp, dfa, drtp, fa, local_loss  # noqa: F401  (registration)
from bpfree.rules.base import LearningRule
from bpfree.rules.registry import get, names, register
