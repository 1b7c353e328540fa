"""GLE and LE: learning in continuous time with prospective neurons (`bpfree.models.gle`, `bpfree.layers.gle`).

GLE — Generalized Latent Equilibrium (Ellenberger et al., "Backpropagation through space, time and
the brain", arXiv 2403.16933): per unit u̇ = (W r_in + b + γ ê − u)/τ_m, r = φ(u + τ_r u̇); error
neurons v̇ = (φ'(ŭ) ⊙ Wᵀ ê_above − v)/τ_r, ê = v + τ_m v̇; plasticity Ẇ ∝ ê r_inᵀ at every dt step.
LE — Latent Equilibrium (Haider et al., NeurIPS 2021): the special case τ_r = τ_m, instantaneous errors.

These rules train their own model (`GLENetwork`, kind "gle"). Their hparams: the time step ``dt``, the
time constant ``tau`` (≥ dt: explicit Euler), the hidden units' ``tau_profile`` (GLE only), the
nudging strength ``gamma``, the output error scale ``beta`` and the dt ``steps`` a static input is
presented for. A grid-search dataset's vector inputs are presented statically (input_mode "static");
sequences are for `bpfree.models.gle.build_gle_network(..., input_mode="sequence")`.
"""

from bpfree import checks
from bpfree.layers.gle import TAU_PROFILES
from bpfree.rules.base import Rule, number, whole
from bpfree.rules.registry import register


class ContinuousTimeRule(Rule):
    """The hparams of a continuous-time rule; `bpfree.models.gle.GLENetwork.from_rule` builds its model."""

    model = "gle"
    mode = "gle"
    search_values = {"dt": (0.2, 0.1), "tau": (1.2, 0.6, 2.4), "tau_profile": TAU_PROFILES, "gamma": (0.0, 0.1),
                     "beta": (1.0, 0.1), "steps": (30, 60)}

    def __init__(self, dt=0.2, tau=1.2, gamma=0.0, beta=1.0, steps=30):
        self.dt = number(self.name, "dt", dt, lambda v: v > 0, "a time step > 0")
        self.tau = number(self.name, "tau", tau, lambda v: v >= self.dt,
                          f"a time constant > 0 and ≥ dt = {self.dt!r} (explicit Euler)")
        self.gamma = number(self.name, "gamma", gamma, lambda v: v >= 0, "a nudging strength ≥ 0")
        self.beta = number(self.name, "beta", beta, lambda v: v > 0, "an output error scale > 0")
        self.steps = whole(self.name, "steps", steps, lambda v: v >= 1, "a whole number of dt steps ≥ 1")

    def network_options(self):
        """The keyword arguments of `build_gle_network` this rule sets."""
        return {**self.get_config(), "mode": self.mode}


@register
class GLE(ContinuousTimeRule):
    name = "gle"
    summary = "GLE: prospective neurons and errors in continuous time, an update every dt (own model)"

    def __init__(self, dt=0.2, tau=1.2, tau_profile="mixed", gamma=0.0, beta=1.0, steps=30):
        super().__init__(dt=dt, tau=tau, gamma=gamma, beta=beta, steps=steps)
        self.tau_profile = checks.choice("tau_profile", tau_profile, TAU_PROFILES, owner=self.name)


@register
class LE(ContinuousTimeRule):
    name = "le"
    summary = "LE: latent equilibrium (GLE with τ_r = τ_m, instantaneous errors; own model)"
    mode = "le"
    # GLE's, less the τ profile: every LE unit has τ_r = τ_m = tau.
    search_values = {k: v for k, v in ContinuousTimeRule.search_values.items() if k != "tau_profile"}
