"""Models trained by learning rules, and `build_model`: a rule's `model` kind names its class.

    feedforward → `Network` (bp, fa, dfa, drtp, cce, mse, dtp, tp_lsq, tp_rinv, pepita)
    invertible  → `InvertibleNetwork` (gait, tp, bp_inv)
    gle         → `GLENetwork` (gle, le)
    ff          → `FFNetwork` (ff)
"""

from bpfree import rules  # noqa: F401  (registers every rule before a model names one)
from bpfree.models.base import RuleModel
from bpfree.models.convert import ConvertedNetwork, convert
from bpfree.models.feedforward import Network, NetworkConfig
from bpfree.models.ff import FFNetwork
from bpfree.models.gle import GLENetwork, build_gle_network
from bpfree.models.invertible import InvertibleNetwork
from bpfree.models.resnet import resnet, resnet20, resnet56
from bpfree.models.rule_options import configure_rule

MODELS = {"feedforward": Network, "invertible": InvertibleNetwork, "gle": GLENetwork, "ff": FFNetwork}


def model_class(rule):
    """The model class that trains `rule` (a configured rule or its class)."""
    return MODELS[rule.model]


def build_model(algorithm, arch, input_dim, output_dim, **options):
    """A model for `algorithm` (a registered rule's name, or a configured `bpfree.rules.Rule`) with hidden
    widths `arch` ("500-1000-500").

    Options (feedforward rules): activation ("tanh"), batchnorm (False), dropout (0.0), use_bias
    (True), weight_decay (0.0, L2 on kernels), bw_init ("ortho"), problem_type ("classification"),
    init_fw_weight_aligned (False), trackers (()), seed (None: drawn, and recorded in the config),
    output_activation (None: softmax for classification, tanh for reconstruction), and the rule's own
    hparams (`bpfree.rules.rule_class(algorithm).hparams()`, e.g. alpha_t for dtp). Raises ValueError
    naming the valid choices on bad input.
    """
    rule = configure_rule(algorithm, None, options)
    return model_class(rule).from_rule(rule, arch, input_dim, output_dim, **options)


def check_options(rule, arch, input_dim, output_dim, **options):
    """Raises ValueError if `build_model(rule, arch, ...)` would refuse these options; builds nothing."""
    model_class(rule).check_options(rule, arch, input_dim, output_dim, **options)


__all__ = ["MODELS", "ConvertedNetwork", "convert", "FFNetwork", "GLENetwork", "InvertibleNetwork", "Network", "NetworkConfig", "RuleModel",
           "build_gle_network", "build_model", "check_options", "model_class", "resnet", "resnet20", "resnet56"]
