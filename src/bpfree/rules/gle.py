"""GLE and LE: learning in continuous time with prospective neurons (`bpfree.models.gle`, `bpfree.layers.gle`).

GLE — Generalized Latent Equilibrium (Ellenberger et al., "Backpropagation through space, time and
the brain", arXiv 2403.16933): per unit u̇ = (W r_in + b + γ ê − u)/τ_m, r = φ(u + τ_r u̇); error
neurons v̇ = (φ'(ŭ) ⊙ Wᵀ ê_above − v)/τ_r, ê = v + τ_m v̇; plasticity Ẇ ∝ ê r_inᵀ at every dt step.
LE — Latent Equilibrium (Haider et al., NeurIPS 2021): the special case τ_r = τ_m, instantaneous errors.

These rules train their own model (`GLENetwork`), not a `bpfree.models.feedforward.Network`. From the hypermodel's
keywords they use arch, activation, use_bias, weight_decay, problem_type ("classification" → CE on the
output rates, "reconstruction" → MSE) and seed; bw_init is ignored (GLE sends errors through Wᵀ);
batchnorm, dropout and trackers are refused with a ValueError. A grid-search dataset's vector
inputs are presented statically for `steps` dt steps (input_mode "static"); sequences are for
`bpfree.models.gle.build_gle_network(..., input_mode="sequence")` and `bpfree.experiments.mnist1d`.
"""

import bpfree.models.gle  # noqa: F401 - registers GLENetwork / GLEDense with Keras, so `import bpfree` can load them
from bpfree.rules.registry import register


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


class ContinuousTimeRule:
    """A registry entry building a `GLENetwork` (see `bpfree.rules.registry`)."""

    name = None
    summary = None
    mode = "gle"
    extra_hparams = {}
    # The valid range of each own hparam (those in `extra_hparams`), checked for every grid point before
    # the search trains (`bpfree.tuning.validation`); tau ≥ dt is checked in `validate_point`.
    hparam_checks = {
        "dt": (lambda v: v > 0, "a time step > 0"),
        "tau": (lambda v: v > 0, "a time constant > 0 (and ≥ dt)"),
        "tau_profile": (lambda v: v in bpfree.models.gle.TAU_PROFILES, f"one of {', '.join(bpfree.models.gle.TAU_PROFILES)}"),
        "gamma": (lambda v: v >= 0, "a nudging strength ≥ 0"),
        "beta": (lambda v: v > 0, "an output error scale > 0"),
        "steps": (lambda v: _whole(v) and v >= 1, "a whole number of dt steps ≥ 1"),
    }

    def _check(self, activation, batchnorm, dropout, trackers, problem_type):
        from bpfree.layers.gle import ACTIVATIONS

        if activation not in ACTIVATIONS:
            raise ValueError(f"Invalid activation {activation!r} for {self.name}; valid: {', '.join(ACTIVATIONS)}.")
        for label, value, default in (("batchnorm", batchnorm, False), ("dropout", dropout, 0.0)):
            if value != default:
                raise ValueError(f"{self.name} does not support {label}={value!r} (only {default!r}).")
        if trackers:
            raise ValueError(f"{self.name} supports no trackers; got {', '.join(trackers)}.")
        if problem_type not in ("classification", "reconstruction"):
            raise ValueError(f"Unknown problem_type {problem_type!r}; valid: classification, reconstruction.")

    def validate_point(self, point, config, input_dim, output_dim):
        """Refuses a grid point this rule cannot train, before the search starts."""
        self._check(point["activation"], point["batchnorm"], point["dropout"], config.trackers, config.problem_type)
        dt, tau = (point.get(k, self.extra_hparams[k][0]) for k in ("dt", "tau"))
        if not tau >= dt:
            raise ValueError(f"Invalid tau {tau!r} for {self.name}: a time constant ≥ dt = {dt!r} (explicit Euler).")

    def build_model(self, arch, input_dim, output_dim, *, activation="tanh", batchnorm=False, dropout=0.0,
                    bw_init=None, use_bias=True, weight_decay=0.0, problem_type="classification", trackers=(),
                    seed=None, **options):
        from bpfree.models.gle import build_gle_network

        self._check(activation, batchnorm, dropout, tuple(trackers), problem_type)
        options.pop("init_fw_weight_aligned", None)
        options.pop("output_activation", None)
        options.setdefault("mode", self.mode)
        return build_gle_network(arch, input_dim, output_dim, activation=activation, use_bias=use_bias,
                                 weight_decay=weight_decay, loss="ce" if problem_type == "classification" else "mse",
                                 seed=seed, **options)


@register
class GLE(ContinuousTimeRule):
    name = "gle"
    summary = "GLE: prospective neurons and errors in continuous time, an update every dt (own model)"
    mode = "gle"
    extra_hparams = {
        "dt": (0.2, (0.2, 0.1)),
        "tau": (1.2, (1.2, 0.6, 2.4)),
        "tau_profile": ("mixed", ("mixed", "lag", "le")),
        "gamma": (0.0, (0.0, 0.1)),
        "beta": (1.0, (1.0, 0.1)),
        "steps": (30, (30, 60)),
    }


@register
class LE(ContinuousTimeRule):
    name = "le"
    summary = "LE: latent equilibrium (GLE with τ_r = τ_m, instantaneous errors; own model)"
    mode = "le"
    # GLE's, less the τ profile: every LE unit has τ_r = τ_m = tau.
    extra_hparams = {k: v for k, v in GLE.extra_hparams.items() if k != "tau_profile"}
