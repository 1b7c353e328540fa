"""Search spaces: their values (from a preset, `bpfree.tuning.presets`, and the command line), the grid,
trial ids and project names."""

import dataclasses
import hashlib
import itertools
import json
import math

from bpfree import builders, checks, choices
from bpfree.arch import TOKEN_FORMS, arch_string
from bpfree.hparam_names import HPARAMS, SHORT
from bpfree.choices import ACTIVATIONS, BW_INITS

# Trial ids and project names are directory names: at most NAME_MAX bytes (ext4, xfs, btrfs, NFS, ...).
NAME_MAX = 255
# A grid larger than this is refused before it is built: a million points already take over 1 GB and
# 15 s of trial ids to hold, and no search trains that many.
MAX_GRID_POINTS = 100_000


def _rules():
    # Deferred on purpose: the rules import Keras, which reading a preset, --help and refusing a bad
    # setting or an unknown rule name do not need; a valid space's rule hparams do.
    from bpfree import rules

    return rules


class SpaceError(ValueError):
    """A search space or fixed hparam that cannot be used; the message names it."""


class Values(tuple):
    """Several values given for one hparam on the command line (`--lr 1e-3,1e-2`): in `SearchSpace.create`'s
    `fixed`, they replace the preset's list (any other value there is one value, a list of widths included)."""


def split_values(text):
    """The comma-separated values of a flag, commas inside parentheses or brackets kept: "bp,fa" → ["bp",
    "fa"]; "m:mlp(width=8,depth=2),500-500" → ["m:mlp(width=8,depth=2)", "500-500"]. Spaces around a value
    are dropped; an empty value ("bp,,fa", "bp,") is refused naming the text."""
    values, depth, start = [], 0, 0
    for index, char in enumerate(text + ","):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char == "," and (depth == 0 or index == len(text)):
            values.append(text[start:index].strip())
            start = index + 1
    if not all(values):
        raise SpaceError(f"Invalid list {text!r}: comma-separated values, none empty (e.g. bp,fa,dfa or 1e-3,1e-2).")
    return values


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Ordered hparam name → tuple of values; `fixed` names came from the command line.

    A rule's own hparams are namespaced by the rule: "tp_rinv.gamma" (`--rule_hparam tp_rinv.gamma=0.01`,
    or ``gamma = [...]`` in a ``[space.tp_rinv]`` table of a preset). A bare name is accepted when exactly
    one registered rule has it; a bare name that several rules share is refused, naming them.
    """

    values: tuple  # ((name, (v1, v2, ...)), ...)
    fixed: frozenset = frozenset()
    extras: tuple = ()  # (("rule.hparam", (v1, v2, ...)), ...): values for that rule's own hparam

    @classmethod
    def create(cls, space, fixed=None, tune_dropout=True):
        """From a {name: [values]} space (a preset) and {name: value} fixes (the command line), which replace
        the preset's values for that name: one value, or several as `Values` (`--lr 1e-3,1e-2`)."""
        space = dict(space)
        fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
        extras = {}
        for source, is_fixed in ((space, False), (fixed, True)):
            for key, value in list(source.items()):
                if key in HPARAMS:
                    continue
                del source[key]
                for qualified, vals in _rule_hparams(key, value):
                    extras[qualified] = list(vals) if isinstance(vals, Values) else [vals] if is_fixed else vals
        for name, value in fixed.items():
            space[name] = list(value) if isinstance(value, Values) else [value]
        if not tune_dropout and "dropout" not in fixed:  # what the command line gives is searched as given
            space["dropout"] = [0.0]
        ordered = []
        for name in HPARAMS:
            if name not in space:
                raise SpaceError(f"The search space does not define {name!r}.")
            ordered.append((name, _unique(name, tuple(_validate(name, v) for v in _values(name, space[name])))))
        for algorithm in dict(ordered)["algorithm"]:  # after every cheap check: the rules import Keras
            try:
                _rules().rule_class(algorithm)
            except ValueError as e:
                raise SpaceError(str(e)) from None
        checked = []
        for qualified in sorted(extras):
            rule, name = qualified.split(".", 1)
            default = _rules().rule_class(rule).hparams()[name]
            checked.append((qualified, _unique(qualified, tuple(_validate_extra(qualified, v, default)
                                                                for v in _values(qualified, extras[qualified])))))
        space = cls(tuple(ordered), frozenset(fixed), tuple(checked))
        size = space.size()
        if size > MAX_GRID_POINTS:
            counts = " × ".join(f"{len(v)} {n}" for n, v in space.values + space.extras if len(v) > 1)
            raise SpaceError(f"The search space has {size} grid points ({counts}); at most {MAX_GRID_POINTS} "
                             "grid points are searched: fix some hparams or shorten their lists.")
        return space

    def size(self):
        """The number of grid points, counted without building them."""
        others = math.prod(len(v) for n, v in self.values if n != "algorithm")
        return others * sum(math.prod(len(v) for v in self.extra_values(a).values())
                            for a in self.as_dict()["algorithm"])

    def as_dict(self):
        return dict(self.values)

    def extra_values(self, algorithm):
        """{rule hparam: (values...)} for `algorithm`: the space's values, else the rule's default."""
        given = dict(self.extras)
        return {name: given.get(f"{algorithm}.{name}", (default,))
                for name, default in _rules().rule_class(algorithm).hparams().items()}

    def grid(self):
        """Every grid point as {hparam: value}, in a fixed order; a rule's own hparams join the points of
        that rule, by their bare names: the values the space gives for them (a TOML list, or
        `--rule_hparam rule.name=value`), else the rule's default."""
        names = [n for n, _ in self.values]
        points = []
        for combo in itertools.product(*(v for _, v in self.values)):
            point = dict(zip(names, combo))
            extras = self.extra_values(point["algorithm"])
            for extra_combo in itertools.product(*extras.values()):
                points.append({**point, **dict(zip(extras, extra_combo))})
        return points

    def project_name(self, dataset, problem_type, objective):
        """A directory name from what is fixed: "mnist1d-classification-val_error_rate-dfa-lr0.001": the common
        hparams fixed on the command line, then each rule hparam the space fixes to one value other than
        the rule's default ("…-gait-lr0.0001-orthogonal_reg0.1"; "gait.orthogonal_reg0.1" when the space
        has several rules). So runs that differ in a fixed rule hparam are separate projects, and a search
        at the defaults keeps the name it always had (experiment directories are keyed by it)."""
        parts = [dataset.replace(":", "_").replace("/", "_"), problem_type, objective]
        for name, vals in self.values:
            if name in self.fixed and len(vals) == 1:
                parts.append(f"{SHORT[name]}{_short_value(vals[0])}")
        algorithms = self.as_dict()["algorithm"]
        for qualified, vals in self.extras:
            rule, name = qualified.split(".", 1)
            if rule in algorithms and len(vals) == 1 and vals[0] != _rules().rule_class(rule).hparams()[name]:
                parts.append(f"{name if len(algorithms) == 1 else qualified}{_short_value(vals[0])}")
        return _fit_name("-".join(parts))


def trial_id(point):
    """A recognisable, stable id: "dfa-500-500-tanh-bwortho-lr0.001-3f9c2a"; a rule's own hparams
    are shown where they differ from the rule's default ("gait-64-lrelu-bwortho-lr0.001-orthogonal_reg0.1-…").

    An id longer than a file name may be (NAME_MAX bytes: many layers, many rule hparams) keeps the start
    of its readable part and ends with a longer digest (16 hex digits) instead, so it stays unique and
    recognisable; every id that fits is exactly as before (existing records are keyed by them)."""
    shown = [f"{SHORT.get(k, k)}{_short_value(point[k])}" for k in HPARAMS
             if k in point and not (k == "batchnorm" and not point[k]) and not (k == "dropout" and not point[k])]
    defaults = _rules().rule_class(point["algorithm"]).hparams() if "algorithm" in point else {}
    shown += [f"{k}{_short_value(point[k])}" for k in sorted(set(point) - set(HPARAMS))
              if k not in defaults or point[k] != defaults[k]]
    digest = hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()
    return _fit_name("-".join(shown), digest)


def random_order(points, seed):
    """`points` in the order of sha256("<seed> <trial id>"): fixed by the seed, independent of library
    versions and of the grid's own order."""
    return sorted(points, key=lambda p: hashlib.sha256(f"{seed} {trial_id(p)}".encode()).hexdigest())


def _fit_name(readable, digest=None):
    """`readable`-`digest[:6]` (or `readable` alone without a digest) if it fits in NAME_MAX bytes; else
    the longest start of `readable` that fits before "-" + a 16-digit digest."""
    name = f"{readable}-{digest[:6]}" if digest else readable
    if len(name.encode()) <= NAME_MAX:
        return name
    digest = (digest or hashlib.sha1(readable.encode()).hexdigest())[:16]
    start = readable.encode()[:NAME_MAX - len(digest) - 1].decode("utf-8", "ignore").rstrip("-")
    return f"{start}-{digest}"


def _unique(name, values):
    """`values` if no value is listed twice (its grid points would be the same trial); a SpaceError naming it."""
    seen = []
    for value in values:
        if value in seen:
            raise SpaceError(f"Invalid {name} list {list(values)!r}: {value!r} is listed twice.")
        seen.append(value)
    return values


def _values(name, value):
    """A space entry as a non-empty list of values (a single value counts as a list of one)."""
    vals = value if isinstance(value, (list, tuple)) else [value]
    if not vals:
        raise SpaceError(f"The search space gives no value for {name!r}.")
    return vals


def rule_entries(space):
    """{"rule.hparam": values} of the rules' own hparams in a {name: values} space (a preset's [space] table,
    bare names and [space.<rule>] tables resolved as `SearchSpace.create` resolves them)."""
    return {qualified: vals for key, value in space.items() if key not in HPARAMS
            for qualified, vals in _rule_hparams(key, value)}


def _rule_hparams(key, value):
    """[("rule.hparam", values)] for a space entry that is not a common hparam: a "rule.hparam" key, a
    bare hparam name that exactly one rule has, or a [space.<rule>] table {hparam: values}."""
    if isinstance(value, dict):
        checks.choice("rule table [space.<rule>]:", key, _rules().names(), error=SpaceError)
        return [pair for name, vals in value.items() for pair in _rule_hparams(f"{key}.{name}", vals)]
    rule, dot, name = key.rpartition(".")
    if dot:
        checks.choice("rule", rule, _rules().names(), error=SpaceError, label=f"Unknown {key!r}:")
        checks.choice(f"hparam of {rule}", name, tuple(_rules().rule_class(rule).hparams()), error=SpaceError)
        return [(key, value)]
    owners = _rules().owners(key)
    if not owners:
        own = sorted({f"{r}.{h}" for r in _rules().names() for h in _rules().rule_class(r).hparams()})
        raise SpaceError(f"Unknown hparam {key!r}; valid: {', '.join(HPARAMS)} and the rules' own: {', '.join(own)}.")
    if len(owners) > 1:
        raise SpaceError(f"Hparam {key!r} belongs to several rules ({', '.join(owners)}); name the rule: "
                         f"{owners[0]}.{key}=… (or a [space.{owners[0]}] table in a preset).")
    return [(f"{owners[0]}.{key}", value)]


def _validate(name, value):
    if name == "algorithm":
        checks.choice("algorithm", value, choices.RULES, label="Unknown", error=SpaceError)  # before Keras loads
    elif name == "arch" and builders.is_builder(value):
        try:  # a model builder, "module:function(key=value,...)" (`bpfree.builders`): its module loads later
            value = builders.canonical(value)
        except ValueError as e:
            raise SpaceError(str(e)) from None
    elif name == "arch":
        # A string in the arch grammar ("500-1000-500", "conv6k5-pool2-conv16k5-pool2-120-84"), or a list
        # of integer widths; its spelling in records is `arch_string`'s.
        if not isinstance(value, str) and not (isinstance(value, (list, tuple)) and all(
                isinstance(w, int) and not isinstance(w, bool) for w in value)):
            raise SpaceError(f"Invalid arch {value!r}: expected tokens joined by '-' ({TOKEN_FORMS}), e.g. "
                             "'500-1000-500' or 'conv6k5-pool2-conv16k5-pool2-120-84' (or a list of integer widths, "
                             f"or a model builder: {builders.FORM}).")
        try:
            value = arch_string(value)
        except ValueError as e:
            raise SpaceError(str(e)) from None
    elif name == "activation":
        checks.choice("activation", value, ACTIVATIONS, error=SpaceError)
    elif name == "bw_init":
        checks.choice("bw_init", value, BW_INITS, error=SpaceError)
    elif name == "batchnorm" and not isinstance(value, bool):
        raise SpaceError(f"Invalid batchnorm {value!r}: true or false.")
    elif name == "lr":
        if not _is_number(value) or not (0 < value and math.isfinite(value)):
            raise SpaceError(f"Invalid lr {value!r}: a positive number.")
        value = float(value)
    elif name == "dropout":
        if not _is_number(value) or not 0 <= value < 1:
            raise SpaceError(f"Invalid dropout {value!r}: a rate in [0, 1).")
        value = float(value)
    return value


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_extra(name, value, default):
    """A rule hparam's value, of its default's type: true/false for a bool, an integer (not 2.5) for an int,
    a finite number for a float, a string for a string; a string from --rule_hparam NAME=VALUE is parsed.
    Its range is the rule's to check (`bpfree.tuning.validation`)."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise SpaceError(f"Invalid {name} {value!r}: true or false.")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise SpaceError(f"Invalid {name} {value!r}: a string (default {default!r}).")
        return value
    parsed = value
    if isinstance(value, str):
        try:
            parsed = kind(value.strip())
        except ValueError:
            parsed = None
    if kind is int and not (isinstance(parsed, int) and not isinstance(parsed, bool)):
        raise SpaceError(f"Invalid {name} {value!r}: an integer (default {default!r}).")
    if kind is float and not (_is_number(parsed) and math.isfinite(parsed)):
        raise SpaceError(f"Invalid {name} {value!r}: a finite number (default {default!r}).")
    return kind(parsed) if kind in (int, float) else value


def _short_value(value):
    if isinstance(value, bool):
        return "" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
