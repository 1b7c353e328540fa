"""The learning-rule registry: one name per rule, looked up by `build_model`, the hypermodel and the CLI.

A registered rule is any object with

- ``name``: the string users type (``"dfa"``);
- ``summary``: one line for help texts;
- ``build_model(arch, input_dim, output_dim, **options) -> keras.Model``;
- ``extra_hparams``: a mapping ``{hparam name: (default, choices)}`` of the rule's own tunable
  hyperparameters (empty for the feedforward rules), which the hypermodel exposes only when the rule
  is chosen.

Rules that train a `bpfree.models.feedforward.Network` subclass `bpfree.rules.base.LearningRule`; rules with
their own dynamics (GLE) register an object with their own ``build_model``. Either way the hypermodel
and the CLI never special-case a rule.
"""

_RULES = {}


def register(rule):
    """Adds `rule` to the registry under `rule.name` and returns it (usable as a decorator on classes)."""
    instance = rule() if isinstance(rule, type) else rule
    name = instance.name
    if name in _RULES and type(_RULES[name]) is not type(instance):
        raise ValueError(f"A learning rule named {name!r} is already registered.")
    _RULES[name] = instance
    return rule


def names():
    """Every registered rule name, in registration order."""
    _load_builtin_rules()
    return tuple(_RULES)


def get(name):
    """The registered rule called `name`; a ValueError naming the valid ones otherwise."""
    _load_builtin_rules()
    try:
        return _RULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown algorithm {name!r}; valid algorithms: {', '.join(_RULES)}."
        ) from None


def _load_builtin_rules():
    # Importing the package registers the built-in rules; done lazily to avoid an import cycle
    # (rule modules import this one).
    import bpfree.rules  # noqa: F401
