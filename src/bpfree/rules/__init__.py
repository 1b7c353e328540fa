"""Learning rules, one module each, registered by name (`bpfree.rules.registry`).

    rule = bpfree.rules.get("dtp", alpha_t=0.05)   # a configured rule
    bpfree.rules.rule_class("dtp").hparams()        # {"alpha_t": 0.1, "inverse_noise": 0.1}
"""

from bpfree.rules.base import Rule
from bpfree.rules.registry import convolutional_names, get, names, owners, register, rule_class, serialize

# Registration order is the order users see (help texts, the hypermodel's choices).
from bpfree.rules import bp, fa, dfa, drtp, local_loss  # noqa: F401
from bpfree.rules import target_prop, dtp, tp_inverse, gle  # noqa: F401
from bpfree.rules import kp, usf, brsf, frsf, sdfa  # noqa: F401
from bpfree.rules import pepita, ff  # noqa: F401

__all__ = ["Rule", "convolutional_names", "get", "names", "owners", "register", "rule_class", "serialize"]
