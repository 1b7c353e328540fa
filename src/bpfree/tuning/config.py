"""The settings of one search that are not hparams: data, objective, epochs, executions, ..."""

import dataclasses
import numbers

from bpfree import arch, checks, choices, schedules, scoring, seeds  # no Keras: the CLI checks its flags before loading it
from bpfree.datasets import RESIZES, SCALERS, catalog

# How trials are chosen and reported:
# - holdout (the default): validation on a fixed, seeded, stratified carve-out of the training split
#   (validation_frac, default 0.1), every execution scored by its final epoch and evaluated on the test
#   split once, at its end (its record's "test"); the test split never chooses anything.
# - ancestor: the ancestor project's protocol, validation on the test split and every execution scored
#   by its best epoch (optimistic: the test split chooses the epoch and the hparams).
PROTOCOLS = ("holdout", "ancestor")
# Settings a record or config.json made before they existed was run with (what the code did then).
SETTINGS_BEFORE_THEY_EXISTED = {"score": "best", "protocol": lambda recorded: "holdout" if recorded.get(
    "validation_frac") else "ancestor", "test_each_epoch": False}
SETTINGS_BEFORE_THEY_EXISTED.update(momentum=0.0, lr_schedule="constant", lr_milestones=[], lr_factor=0.1,
                                    lr_patience=10)  # the training-protocol block

OBJECTIVES = ("loss", "val_loss", "error_rate", "val_error_rate")
OBJECTIVE_ALIASES = {"error": "error_rate", "val_error": "val_error_rate"}
# Seeds derived from the search seed (`seeds`): execution k uses seeds.execution(seed, k), and a model's
# streams (weights, dropout, feedback matrices, inverses, ...) add at most seeds.HEADROOM to it. Keeping
# every execution's seed below 2**31 − SEED_HEADROOM keeps every derived seed a valid int32 seed.
SEED_HEADROOM = seeds.HEADROOM
SETTINGS_BEFORE_THEY_EXISTED.update(input_size=0, resize="bilinear")  # images were always at their native size
SETTINGS_BEFORE_THEY_EXISTED.update(search="grid", max_trials=None)  # every search was the whole grid
SETTINGS_BEFORE_THEY_EXISTED.update(hyperband_factor=choices.DEFAULT_HYPERBAND_FACTOR)  # unused before hyperband


def canonical_objective(objective):
    """The objective's canonical name (aliases resolved); a ValueError naming the valid ones otherwise."""
    checks.choice("objective", objective, OBJECTIVES + tuple(OBJECTIVE_ALIASES))
    return OBJECTIVE_ALIASES.get(objective, objective)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The settings of one search, recorded in every record's "search" and compared on resume.

    Training protocol: ``momentum`` is SGD's μ, v ← μv − ηg (``optimizer = "sgd"`` only). ``weight_decay``
    λ adds λΣW² on kernels (gradient 2λW); PyTorch's SGD ``weight_decay`` wd adds wd·W (biases too), so
    wd is λ = wd/2 here (biotorch's 1e-3 is 5e-4). ``lr_schedule`` and its ``lr_milestones``, ``lr_factor``,
    ``lr_patience``: the rate of each epoch (`bpfree.schedules`).
    """

    dataset: str = "mnist1d"
    problem_type: str = "classification"
    objective: str = "loss"
    scaler: str = "standard"
    # Images at input_size × input_size (0: native), reached by resize (bilinear | pad): `datasets.load`.
    input_size: int = 0
    resize: str = "bilinear"
    batch_size: int = 64
    num_epochs: int = 10
    executions_per_trial: int = 1
    histogram_freq: int = 0
    examples_frac: float = 0.0
    validation_frac: float = None  # None: 0.1 under the holdout protocol, 0 (the test split) under the ancestor's
    weight_decay: float = 0.0
    use_bias: bool = True
    use_xla: object = "auto"  # True, False, or "auto": see `jit_compile`
    use_early_stopping: bool = False
    early_stopping_patience: int = 10
    trackers: tuple = ()
    seed: int = 0
    optimizer: str = "adam"  # adam | torch_adam (PyTorch's ε) | uncorrected_adam (the GAIT-prop seed's) | sgd
    protocol: str = "holdout"  # holdout | ancestor: see PROTOCOLS
    score: str = None  # final | best | last<k> (bpfree.scoring); None: the protocol's
    # Evaluate the test split after every epoch too (history test_loss, test_<metric>), so a table can report
    # the test error at the epoch the validation split chose; it never chooses anything itself.
    test_each_epoch: bool = False
    # Training protocol (see the docstring). lr_schedule: constant | step (× lr_factor from each of
    # lr_milestones on, epochs from 0) | cosine (over num_epochs) | plateau (× lr_factor after lr_patience
    # epochs without a better val_loss).
    momentum: float = 0.0
    lr_schedule: str = "constant"
    lr_milestones: tuple = ()
    lr_factor: float = 0.1
    lr_patience: int = 10
    # How trials are chosen (`bpfree.tuning.searches`): grid (every point) | random (a sample of max_trials
    # points, seeded by seed) | bayesian (keras-tuner's Bayesian optimisation over the grid, max_trials trials)
    # | hyperband (keras-tuner's Hyperband brackets over num_epochs and hyperband_factor, at most max_trials points).
    search: str = "grid"
    max_trials: int = None  # None with grid; an integer ≥ 1 otherwise
    hyperband_factor: int = choices.DEFAULT_HYPERBAND_FACTOR  # an integer ≥ 2 with hyperband; the default otherwise

    def __post_init__(self):
        checks.choice("protocol", self.protocol, PROTOCOLS)
        if self.validation_frac is None:
            object.__setattr__(self, "validation_frac", 0.1 if self.protocol == "holdout" else 0.0)
        if self.score is None:
            object.__setattr__(self, "score", "final" if self.protocol == "holdout" else "best")
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, check_type(field.name, getattr(self, field.name)))
        scoring.check_score(self.score)
        if self.protocol == "ancestor" and self.validation_frac:
            raise checks.invalid("validation_frac", self.validation_frac, "0 under the ancestor protocol, which "
                                 "validates on the test split (or use --protocol holdout)")
        if self.protocol == "holdout" and not self.validation_frac:
            raise checks.invalid("validation_frac", self.validation_frac, "a fraction in (0, 1) under the holdout "
                                 "protocol, which chooses on a carve-out of train (or use --protocol ancestor to "
                                 "validate on the test split)")
        object.__setattr__(self, "objective", canonical_objective(self.objective))
        catalog.resolve(self.dataset)
        arch.check_problem_type(self.problem_type)
        if self.problem_type == "reconstruction" and "error_rate" in self.objective:
            logged = " or ".join(o for o in OBJECTIVES if "error_rate" not in o)
            raise checks.invalid("objective", self.objective, f"it is never logged for reconstruction; use {logged}")
        checks.choice("scaler", self.scaler, SCALERS)
        for name in ("batch_size", "num_epochs", "executions_per_trial"):
            checks.whole(name, getattr(self, name), lambda v: v >= 1, "must be ≥ 1")
        for name in ("histogram_freq", "early_stopping_patience"):
            checks.whole(name, getattr(self, name), lambda v: v >= 0, "must be ≥ 0")
        for name in ("examples_frac", "validation_frac"):
            checks.number(name, getattr(self, name), lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")
        checks.number("weight_decay", self.weight_decay, lambda v: v >= 0, "a finite number ≥ 0")
        top = self.max_seed(self.executions_per_trial)
        if top < 0:
            raise checks.invalid("executions_per_trial", self.executions_per_trial, f"at most {self.max_seed() + 1} "
                                 "(execution k uses seed + k, an int32 seed)")
        checks.whole("seed", self.seed, lambda v: 0 <= v <= top, f"an integer in [0, {top}] (execution k uses "
                     f"seed + k, and models derive seeds up to {SEED_HEADROOM} above it; all must stay below 2**31)")
        choices.check_trackers(self.trackers)
        checks.choice("optimizer", self.optimizer, choices.OPTIMIZERS)
        checks.number("momentum", self.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if self.momentum and self.optimizer != "sgd":
            raise checks.invalid("momentum", self.momentum, f"0 with optimizer {self.optimizer} (momentum is "
                                 "SGD's: use optimizer sgd)")
        schedules.check(self.lr_schedule, self.lr_milestones, self.lr_factor, self.lr_patience)
        checks.whole("input_size", self.input_size, lambda v: v >= 0, "an integer ≥ 0 (0: the native size)")
        checks.choice("resize", self.resize, RESIZES)
        choices.check_search(self.search, self.max_trials, self.hyperband_factor)

    @staticmethod
    def max_seed(executions_per_trial=1):
        """The largest search seed whose executions' seeds (seed + k) and derived seeds fit in int32."""
        return seeds.INT32_LIMIT - 1 - SEED_HEADROOM - (executions_per_trial - 1)

    @classmethod
    def from_settings(cls, preset=None, overrides=None, source="the hparams file"):
        """The config from a preset's [search] table (checked key by key, errors name `source`) and the
        command line's `overrides` (which win)."""
        preset = dict(preset or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(preset) - set(names), key=str)
        if unknown:
            raise checks.unknown("[search] key" if len(unknown) == 1 else "[search] keys",
                                 unknown[0] if len(unknown) == 1 else unknown, names, owner=f"hparams file {source!r}")
        for name, value in preset.items():
            try:
                preset[name] = check_type(name, value)
            except ValueError as e:
                raise ValueError(f"Hparams file {source!r}: [search] {str(e)[0].lower()}{str(e)[1:]}") from None
        return cls(**{**preset, **{k: v for k, v in (overrides or {}).items() if v is not None}})

    @property
    def tunes_dropout(self):
        """Dropout is tuned only against a validation objective (it cannot lower a training one)."""
        return self.objective.startswith("val_")

    @property
    def jit_compile(self):
        """`use_xla` resolved: "auto" compiles with XLA where a GPU is visible and not on CPUs. On 2 CPU
        cores XLA lost on both grids of bench/grid_throughput.py (its compile costs more than it saves:
        0.5× the trials per hour on the quickstart grid, 0.8× on 784-500-500 nets)."""
        if self.use_xla != "auto":
            return self.use_xla
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))

    @property
    def data_options(self):
        """The keyword arguments every `datasets.load` / `info` / `pipeline` call of the search passes."""
        return {"input_size": self.input_size, "resize": self.resize}

    def dataset_info(self):
        """The `datasets.DatasetInfo` of the search's data, at its input size."""
        return catalog.info(self.dataset, **self.data_options)

    @property
    def validation_split(self):
        """The split used for val_* metrics: a carve-out of train when validation_frac > 0, else test."""
        return "validation" if self.validation_frac else "test"

    def to_json(self):
        return {**dataclasses.asdict(self), "trackers": list(self.trackers), "lr_milestones": list(self.lr_milestones)}

    @staticmethod
    def completed(recorded):
        """A recorded settings dict with the settings added since it was written (as they were then)."""
        recorded = dict(recorded)
        for name, then in SETTINGS_BEFORE_THEY_EXISTED.items():
            if name not in recorded:
                recorded[name] = then(recorded) if callable(then) else then
        return recorded


_TYPES = {f.name: f.type for f in dataclasses.fields(SearchConfig)}
_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          tuple: "a list of names, e.g. [\"bp_cosine\"]"}


def check_type(name, value):
    """`value` as the type of SearchConfig's field `name` (an int is a valid float; bools are not numbers;
    trackers a list or tuple of strings, returned as a tuple); a ValueError naming the value otherwise."""
    kind = _TYPES[name]
    if name == "max_trials" and value is None:  # unset: the grid
        return None
    if name == "use_xla":
        if isinstance(value, bool) or type(value).__name__ == "bool_" or value == "auto":
            return value if value == "auto" else bool(value)
        raise checks.invalid(name, value, 'true, false or "auto"')
    if name == "lr_milestones":  # epochs: a list of integers
        if isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                    for v in value):
            return tuple(int(v) for v in value)
        raise checks.invalid(name, value, "a list of epochs, e.g. [50, 75]")
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
    if kind is int and number and isinstance(value, numbers.Integral):
        return int(value)
    if kind is float and number:
        return float(value)
    if kind is bool and (isinstance(value, bool) or type(value).__name__ == "bool_"):
        return bool(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is tuple and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise checks.invalid(name, value, f"{_KINDS[kind]}, not a {type(value).__name__}")
