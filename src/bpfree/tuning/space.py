"""Search spaces: TOML presets, command-line fixes, the grid, trial ids and project names."""

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib

from bpfree import rules
from bpfree.layers import ACTIVATIONS, BW_INITS
from bpfree.networks import parse_arch

# The common hparams, by their long names, in grid order (the last varies fastest).
HPARAMS = ("algorithm", "arch", "activation", "batchnorm", "bw_init", "lr", "dropout")
SHORT = {"algorithm": "", "arch": "", "activation": "", "batchnorm": "bn", "bw_init": "bw", "lr": "lr",
         "dropout": "do"}


class SpaceError(ValueError):
    """A search space or fixed hparam that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Ordered hparam name → tuple of values; `fixed` names came from the command line."""

    values: tuple  # ((name, (v1, v2, ...)), ...)
    fixed: frozenset = frozenset()
    extras: tuple = ()  # ((rule hparam name, (v1, v2, ...)), ...): values for the rules that have it

    @classmethod
    def create(cls, space, fixed=None, tune_dropout=True):
        """From a {name: [values]} space (a preset) and {name: value} fixes (the command line)."""
        space = dict(space)
        fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
        extra_defaults = _extra_defaults()
        unknown = (set(space) | set(fixed)) - set(HPARAMS) - set(extra_defaults)
        if unknown:
            raise SpaceError(f"Unknown hparam(s) {', '.join(sorted(unknown))}; valid: {', '.join(HPARAMS)} and "
                             f"the rules' own: {', '.join(sorted(extra_defaults))}.")
        for name, value in fixed.items():
            space[name] = [value]
        if not tune_dropout:
            space["dropout"] = [fixed.get("dropout", 0.0)]
        ordered = []
        for name in HPARAMS:
            if name not in space:
                raise SpaceError(f"The search space does not define {name!r}.")
            vals = space[name] if isinstance(space[name], (list, tuple)) else [space[name]]
            if not vals:
                raise SpaceError(f"The search space gives no value for {name!r}.")
            ordered.append((name, tuple(_validate(name, v) for v in vals)))
        extras = []
        for name in sorted(set(space) - set(HPARAMS)):
            vals = space[name] if isinstance(space[name], (list, tuple)) else [space[name]]
            if not vals:
                raise SpaceError(f"The search space gives no value for {name!r}.")
            extras.append((name, tuple(_validate_extra(name, v, extra_defaults[name]) for v in vals)))
        return cls(tuple(ordered), frozenset(fixed), tuple(extras))

    def as_dict(self):
        return dict(self.values)

    def extra_values(self, algorithm):
        """{rule hparam: (values...)} for `algorithm`: the space's values, else the rule's default."""
        given = dict(self.extras)
        return {name: given.get(name, (default,)) for name, (default, _) in rules.get(algorithm).extra_hparams.items()}

    def grid(self):
        """Every grid point as {hparam: value}, in a fixed order; a rule's own hparams (its
        `extra_hparams`) join the points of that rule: the values the space gives for them (a TOML
        list, or `--rule_hparam name=value`), else the rule's default."""
        names = [n for n, _ in self.values]
        points = []
        for combo in itertools.product(*(v for _, v in self.values)):
            point = dict(zip(names, combo))
            extras = self.extra_values(point["algorithm"])
            for extra_combo in itertools.product(*extras.values()):
                points.append({**point, **dict(zip(extras, extra_combo))})
        return points

    def project_name(self, dataset, problem_type, objective):
        """A directory name from what is fixed: "mnist1d-classification-val_error_rate-dfa-lr0.001"."""
        parts = [dataset.replace(":", "_").replace("/", "_"), problem_type, objective]
        for name, vals in self.values:
            if name in self.fixed and len(vals) == 1:
                parts.append(f"{SHORT[name]}{_short_value(vals[0])}")
        return "-".join(parts)


def trial_id(point):
    """A recognisable, stable id: "dfa-500-500-tanh-bwortho-lr0.001-3f9c2a"; a rule's own hparams
    are shown where they differ from the rule's default ("gait-64-lrelu-bwortho-lr0.001-orthogonal_reg0.1-…")."""
    shown = [f"{SHORT.get(k, k)}{_short_value(point[k])}" for k in HPARAMS
             if k in point and not (k == "batchnorm" and not point[k]) and not (k == "dropout" and not point[k])]
    defaults = rules.get(point["algorithm"]).extra_hparams if "algorithm" in point else {}
    shown += [f"{k}{_short_value(point[k])}" for k in sorted(set(point) - set(HPARAMS))
              if k not in defaults or point[k] != defaults[k][0]]
    digest = hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return "-".join(shown + [digest])


def load_preset(path):
    """({search settings}, {space}) from a TOML preset."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SpaceError(f"Hparams file {path!r} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"Hparams file {path!r} is not valid TOML: {e}") from None
    unknown = set(data) - {"search", "space"}
    if unknown:
        raise SpaceError(f"Hparams file {path!r}: unknown table(s) {', '.join(sorted(unknown))}; valid: search, space.")
    return dict(data.get("search", {})), dict(data.get("space", {}))


def _validate(name, value):
    if name == "algorithm":
        rules.get(value)
    elif name == "arch":
        value = "-".join(str(w) for w in parse_arch(value))
    elif name == "activation" and value not in ACTIVATIONS:
        raise SpaceError(f"Unknown activation {value!r}; valid: {', '.join(ACTIVATIONS)}.")
    elif name == "bw_init" and value not in BW_INITS:
        raise SpaceError(f"Unknown bw_init {value!r}; valid: {', '.join(BW_INITS)}.")
    elif name == "batchnorm" and not isinstance(value, bool):
        raise SpaceError(f"Invalid batchnorm {value!r}: true or false.")
    elif name == "lr":
        if not isinstance(value, (int, float)) or not (0 < value and math.isfinite(value)):
            raise SpaceError(f"Invalid lr {value!r}: a positive number.")
        value = float(value)
    elif name == "dropout":
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise SpaceError(f"Invalid dropout {value!r}: a rate in [0, 1).")
        value = float(value)
    return value


def _extra_defaults():
    """{rule hparam name: its default} over every registered rule."""
    return {name: spec[0] for r in rules.names() for name, spec in rules.get(r).extra_hparams.items()}


def _validate_extra(name, value, default):
    """A rule hparam's value, of its default's type (0.1 for a float, true/false for a bool)."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise SpaceError(f"Invalid {name} {value!r}: true or false.")
        return value
    try:
        if isinstance(value, bool) or (kind in (int, float) and isinstance(value, str) and not value.strip()):
            raise ValueError
        value = kind(value)
    except (TypeError, ValueError):
        raise SpaceError(f"Invalid {name} {value!r}: a {kind.__name__} (default {default!r}).") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SpaceError(f"Invalid {name} {value!r}: a finite number.")
    return value


def _short_value(value):
    if isinstance(value, bool):
        return "" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
