"""The one way bpfree refuses bad input: a single line naming the bad value and the valid ones.

    checks.choice("activation", "tahn", ACTIVATIONS)
    → ValueError: Unknown activation 'tahn'; valid: tanh, relu, lrelu, swish, sigmoid, linear.
    checks.number("gamma", -1.0, lambda v: v > 0, "a number > 0", owner="tp_rinv")
    → ValueError: Invalid gamma -1.0 for tp_rinv: a number > 0.
    raise checks.unknown("optimizer", "adamw", NAMES)   # where the caller has already decided
    → ValueError: Unknown optimizer 'adamw'; valid: adam, torch_adam, uncorrected_adam, sgd.

The CLI prints such a message as `error: …` and exits 2, before anything trains.
"""

import math


def choice(what, value, valid, *, error=ValueError, label="Unknown", owner=None):
    """`value` if it is among `valid`; else raises `error`("<label> <what> <value>[ for <owner>]; valid: …")."""
    try:
        ok = value in valid
    except TypeError:  # an unhashable value looked up in a dict or set
        ok = False
    if not ok:
        raise unknown(what, value, valid, error=error, label=label, owner=owner)
    return value


def unknown(what, value, valid, *, error=ValueError, label="Unknown", owner=None):
    """The exception `choice` raises, for a caller that has already found `value` wrong (an if-chain
    that fell through, a test other than membership): "<label> <what> <value>[ for <owner>]; valid: …"."""
    return error(f"{label} {what} {value!r}{_for(owner)}; valid: {', '.join(map(str, valid)) or 'none'}.")


def invalid(what, value, valid, *, error=ValueError, owner=None):
    """The exception for a value out of its range: "Invalid <what> <value>[ for <owner>]: <valid>."."""
    return error(f"Invalid {what} {value!r}{_for(owner)}: {valid}.")


def is_number(value):
    """A real number that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(what, value, ok, valid, *, error=ValueError, owner=None):
    """`value` if it is a finite number (not a bool) with ok(value); else raises `invalid(...)`."""
    try:
        good = is_number(value) and math.isfinite(value) and bool(ok(value))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise invalid(what, value, valid, error=error, owner=owner)
    return value


def whole(what, value, ok, valid, *, error=ValueError, owner=None):
    """`value` if it is an int (not a bool, not 2.5) with ok(value); else raises `invalid(...)`."""
    good = isinstance(value, int) and not isinstance(value, bool) and bool(ok(value))
    if not good:
        raise invalid(what, value, valid, error=error, owner=owner)
    return value


def _for(owner):
    return f" for {owner}" if owner else ""
