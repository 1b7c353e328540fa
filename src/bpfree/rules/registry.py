"""The learning-rule registry: {name: rule class}, looked up by `build_model`, the hypermodel and the CLI.

`get(name, **hparams)` is a configured rule (`bpfree.rules.base.Rule`), like `keras.optimizers.get`;
`rule_class(name)` the class, whose `hparams()` are its own tunable hyperparameters with their
defaults. The registry imports no model: a rule names the kind of model that trains it (`Rule.model`)
and `bpfree.models` maps kinds to classes, so the hypermodel and the CLI never special-case a rule.
"""

from bpfree import checks

_RULES = {}


def register(cls):
    """Adds the rule class `cls` under `cls.name` (a class decorator); a second class with a taken name is refused."""
    name = cls.name
    if name in _RULES and _RULES[name] is not cls:
        raise ValueError(f"A learning rule named {name!r} is already registered.")
    _RULES[name] = cls
    return cls


def names():
    """Every registered rule name, in registration order."""
    return tuple(_RULES)


def convolutional_names():
    """The names of the rules that train convolution blocks."""
    return tuple(name for name, cls in _RULES.items() if cls.convolutional)


def rule_class(name):
    """The rule class registered as `name`; a ValueError naming the valid ones otherwise."""
    return _RULES[checks.choice("algorithm", name, _RULES, label="Unknown")]


def get(identifier, **hparams):
    """A configured rule: `identifier` a registered name (with the rule's hparams as keywords), a rule
    instance (returned as is), or a config dict {"name": ..., hparam: value, ...} (`serialize`)."""
    if isinstance(identifier, dict):
        config = dict(identifier)
        return get(config.pop("name", None), **config, **hparams)
    if hasattr(identifier, "local_losses") and not isinstance(identifier, type):
        if hparams:
            raise ValueError(f"get({identifier!r}, ...) takes no hparams for a rule that is already configured.")
        return identifier
    return rule_class(identifier)(**hparams)


def serialize(rule):
    """{"name": rule.name, **rule.get_config()}: what a model saves of its rule."""
    return {"name": rule.name, **rule.get_config()}


def owners(hparam):
    """The names of the rules that have an hparam called `hparam`, in registration order."""
    return tuple(name for name, cls in _RULES.items() if hparam in cls.hparams())
