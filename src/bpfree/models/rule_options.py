"""Turning `build_model`'s keywords into a configured rule: the rule's own hparams are taken out of
the options, any other rule's hparam is refused by name."""

from bpfree import rules


def configure_rule(algorithm, rule_config, options):
    """The configured rule for `algorithm` (a name or a `Rule`); `rule_config` ({hparam: value} or
    None, as saved in a model's config) and the rule's hparams among `options` (removed from it) are
    its constructor arguments. A keyword that is another rule's hparam is refused, naming the rule's own."""
    name = algorithm if isinstance(algorithm, str) else getattr(algorithm, "name", algorithm)
    own = rules.rule_class(name).hparams()
    known = {h for r in rules.names() for h in rules.rule_class(r).hparams()}
    given = dict(rule_config or {})
    for key in [k for k in options if k in known]:
        given[key] = options.pop(key)
    for key in given:
        if key not in own:
            raise ValueError(f"{key!r} is not an hparam of {name!r}; its own hparams: {', '.join(own) or 'none'}.")

    if not isinstance(algorithm, str):
        if given:
            raise ValueError(f"The rule {algorithm!r} is configured already; got hparams {', '.join(given)} too.")
        return rules.get(algorithm)
    return rules.get(name, **given)
