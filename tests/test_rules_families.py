"""Every registered rule belongs to one rule family, whose test file checks its update against numpy formulas:
registering a rule fails here until it has a family file that names it. The checks every rule gets from the
registry without being named are elsewhere: eager/graph/XLA (test_compile_modes.py), convolutions
(test_conv_rules.py, test_conv_learning.py)."""

import os

from bpfree.rules import registry

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = {
    "test_rules_feedback_alignment.py": ("bp", "fa", "kp", "usf", "brsf", "frsf"),
    "test_rules_direct.py": ("dfa", "drtp", "cce", "mse", "sdfa"),
    "test_rules_target_prop.py": ("gait", "tp", "bp_inv", "dtp", "tp_lsq", "tp_rinv"),
    "test_rules_pepita.py": ("pepita",),
    "test_rules_forward_forward.py": ("ff",),
    "test_gle.py": ("gle", "le"),
}


def test_every_registered_rule_has_one_family_test_file_that_names_it():
    listed = [rule for rules in FAMILIES.values() for rule in rules]
    assert len(listed) == len(set(listed)), "a rule in two families"
    assert set(listed) == set(registry.names()), (
        f"not in a family: {set(registry.names()) - set(listed)}; not registered: {set(listed) - set(registry.names())}")
    for name, rules in FAMILIES.items():
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            text = f.read()
        for rule in rules:
            assert f'"{rule}"' in text, f"{name} does not name {rule}"
