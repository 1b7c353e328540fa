"""Learning rules, one module each, registered by name (see `bpfree.rules.registry`)."""

# Registration order is the order users see (help texts, the hypermodel's choices).
from bpfree.rules import bp  # noqa: F401,I001
from bpfree.rules import fa  # noqa: F401
from bpfree.rules import dfa  # noqa: F401
from bpfree.rules import drtp  # noqa: F401
from bpfree.rules import local_loss  # noqa: F401
from bpfree.rules.base import LearningRule
from bpfree.rules.registry import get, names, register
from bpfree.rules import target_prop  # noqa: F401,E402
from bpfree.rules import dtp, tp_inverse  # noqa: F401,E402
from bpfree.rules import gle  # noqa: F401,E402
