"""The settings of one search that are not hparams: data, objective, epochs, executions, ..."""

import dataclasses

from bpfree import optimizers
from bpfree import trackers as trackers_lib
from bpfree.datasets import SCALERS, catalog
from bpfree.networks import PROBLEM_TYPES

OBJECTIVES = ("loss", "val_loss", "error_rate", "val_error_rate")
OBJECTIVE_ALIASES = {"error": "error_rate", "val_error": "val_error_rate"}


def canonical_objective(objective):
    objective = OBJECTIVE_ALIASES.get(objective, objective)
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)} (aliases: error, val_error)."
        )
    return objective


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    dataset: str = "mnist1d"
    problem_type: str = "classification"
    objective: str = "loss"
    scaler: str = "standard"
    batch_size: int = 64
    num_epochs: int = 10
    executions_per_trial: int = 1
    histogram_freq: int = 0
    examples_frac: float = 0.0
    validation_frac: float = 0.0
    weight_decay: float = 0.0
    use_bias: bool = True
    use_xla: bool = True
    use_early_stopping: bool = False
    early_stopping_patience: int = 10
    trackers: tuple = ()
    seed: int = 0
    optimizer: str = "adam"  # adam | uncorrected_adam (the GAIT-prop seed's) | sgd

    def __post_init__(self):
        object.__setattr__(self, "objective", canonical_objective(self.objective))
        catalog.resolve(self.dataset)
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"Unknown problem_type {self.problem_type!r}; valid: {', '.join(PROBLEM_TYPES)}.")
        if self.problem_type == "reconstruction" and "error_rate" in self.objective:
            raise ValueError(
                f"Objective {self.objective!r} is never logged for reconstruction; valid: loss, val_loss."
            )
        if self.scaler not in SCALERS:
            raise ValueError(f"Unknown scaler {self.scaler!r}; valid: {', '.join(SCALERS)}.")
        for name in ("batch_size", "num_epochs", "executions_per_trial"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Invalid {name} {getattr(self, name)!r}: must be ≥ 1.")
        if self.histogram_freq < 0:
            raise ValueError(f"Invalid histogram_freq {self.histogram_freq!r}: must be ≥ 0.")
        for name in ("examples_frac", "validation_frac"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Invalid {name} {getattr(self, name)!r}: a fraction in [0, 1).")
        trackers_lib.validate(self.trackers)
        if self.optimizer not in optimizers.NAMES:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; valid: {', '.join(optimizers.NAMES)}.")

    @property
    def tunes_dropout(self):
        """Dropout is tuned only against a validation objective (it cannot lower a training one)."""
        return self.objective.startswith("val_")

    @property
    def validation_split(self):
        """The split used for val_* metrics: a carve-out of train when validation_frac > 0, else test."""
        return "validation" if self.validation_frac else "test"

    def to_json(self):
        return {**dataclasses.asdict(self), "trackers": list(self.trackers)}
