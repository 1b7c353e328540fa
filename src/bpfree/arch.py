"""The arch string and the problem types: what every model, rule and search reads the same way.

An arch is the hidden widths joined by '-' ("500-1000-500"); a problem is a classification (softmax
output, cross-entropy) or a reconstruction (tanh or sigmoid output, MSE).
"""

from bpfree import checks

PROBLEM_TYPES = ("classification", "reconstruction")
# The output activations a problem allows; the first is its default.
OUTPUT_ACTIVATIONS = {"classification": ("softmax",), "reconstruction": ("tanh", "sigmoid")}


def parse_arch(arch):
    """"500-1000-500" (or a sequence of ints) → (500, 1000, 500): the hidden widths."""
    if isinstance(arch, str):
        parts = arch.strip().split("-") if arch.strip() else []
        try:
            widths = tuple(int(p) for p in parts)
        except ValueError:
            widths = None
    else:
        try:
            widths = tuple(int(w) for w in arch)
        except (TypeError, ValueError):
            widths = None
    if not widths or any(w <= 0 for w in widths):
        raise ValueError(
            f"Invalid arch {arch!r}: expected positive hidden widths joined by '-', e.g. '500' or '500-1000-500'."
        )
    return widths


def arch_string(arch):
    """(500, 1000, 500) or "500-1000-500" → "500-1000-500" (the one spelling records and configs use)."""
    return "-".join(str(w) for w in parse_arch(arch))


def check_problem_type(problem_type, error=ValueError):
    """`problem_type` if it is one of PROBLEM_TYPES; `error` naming the valid ones otherwise."""
    return checks.choice("problem_type", problem_type, PROBLEM_TYPES, error=error)


def output_activation(problem_type, output_activation=None):
    """The output activation of a problem: `output_activation` if the problem allows it, its default if None."""
    check_problem_type(problem_type)
    valid = OUTPUT_ACTIVATIONS[problem_type]
    if output_activation is None:
        return valid[0]
    return checks.choice(f"output_activation for {problem_type}", output_activation, valid, label="Invalid")
