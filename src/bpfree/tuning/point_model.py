"""The one function from a grid point to its model: an arch string's `Network` (`bpfree.build_model`), or a
builder's Keras model converted for the point's rule (`bpfree.builders`, `bpfree.convert`)."""

from bpfree import builders, rules
from bpfree.models import build_model, convert
from bpfree.tuning import inputs


def rule_hparams(point):
    """The point's values of its rule's own hparams."""
    return {k: point[k] for k in rules.rule_class(point["algorithm"]).hparams() if k in point}


def point_model(point, config, input_shape, output_dim, seed):
    """The (uncompiled) model of grid `point` for a search of `config` on inputs of `input_shape` (the
    dataset's) with `output_dim` outputs, its weights, feedback matrices and dropout masks seeded by `seed`."""
    if builders.is_builder(point["arch"]):
        source = builders.build(point["arch"], input_shape, output_dim, seed=seed, activation=point["activation"],
                                batchnorm=point["batchnorm"], dropout=point["dropout"])
        return convert(source, point["algorithm"], bw_init=point["bw_init"], problem_type=config.problem_type,
                       trackers=config.trackers, seed=seed, **rule_hparams(point))
    return build_model(
        point["algorithm"], point["arch"], inputs.input_dim(point["arch"], input_shape, config.dataset), output_dim,
        activation=point["activation"], batchnorm=point["batchnorm"], dropout=point["dropout"],
        bw_init=point["bw_init"], use_bias=config.use_bias, weight_decay=config.weight_decay,
        problem_type=config.problem_type, trackers=config.trackers, seed=seed, **rule_hparams(point))
