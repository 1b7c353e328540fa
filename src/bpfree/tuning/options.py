"""How a search trains its executions (`EngineOptions`), and what makes executions one structure.

None of these change a number a search records: a member of a program trains exactly as the same
execution alone (`bpfree.tuning.engine`), so they are run options, not search settings.
"""

import dataclasses

from bpfree import checks

# Hparams a program reads per member (copied in with the model's state): grid points that differ only
# in these share a structure, and so a program.
VARIABLE_HPARAMS = ("lr",)

# Members a program holds at most when `members` is automatic: on a CPU more members share no idle
# core and cost each program's trace more (bench/member_axis.py); a GPU's kernels stay latency-bound
# far longer.
AUTO_MEMBERS = {"cpu": 16, "gpu": 64}
# Members of every program without XLA (automatic `members`): the same for every structure whatever the grid,
# since there a member's numbers depend on the member count (`GridTuner._program`). One: without XLA
# TensorFlow's batched matmul over members was no faster on CPUs than the members one after another
# (bench/grid_throughput.py), so each execution trains alone in its structure's program, as before.
AUTO_MEMBERS_WITHOUT_XLA = 1
# Members of every program under XLA at least: a program of one member is a degenerate batch, which XLA
# computes as a plain matmul summed in another order than a member of a larger program (a spare member
# is masked).
MIN_MEMBERS = 2
# Memory the members' state and activations may take, per program, when `members` is automatic.
AUTO_MEMORY_BYTES = {"cpu": 2 * 2**30, "gpu": 8 * 2**30}


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """``members``: the most executions of one structure a program trains in the same kernels (a
    capacity, ≥ 1; 0: automatic, from the structure's size, its executions and the device, `capacity`).
    ``fit``: every execution through its own Keras `fit` instead (a debugging path; slower).
    ``checkpoint_seconds``: the most training time between two checkpoints of an execution (0: every
    epoch); a killed run replays at most that much, bit for bit.
    ``save_models``: keep each execution's final model as ``execution_<k>.keras`` beside its record
    (`bpfree.tuning.execution.Execution.conclude`; read back by `bpfree.results.best_models`)."""

    members: int = 0
    fit: bool = False
    checkpoint_seconds: float = 30.0
    save_models: bool = False

    def __post_init__(self):
        checks.whole("members", self.members, lambda v: v >= 0, "an integer ≥ 0 (0: automatic)")
        checks.number("checkpoint_seconds", self.checkpoint_seconds, lambda v: v >= 0, "a number ≥ 0 (0: every epoch)")

    def describe(self, jit_compile):
        """The plan's line: how the search trains (`jit_compile`: whether its programs compile with XLA)."""
        if self.fit:
            return "each execution through its own fit (--engine fit)"
        if not jit_compile:
            members = self.members or AUTO_MEMBERS_WITHOUT_XLA
            return (f"members {members} without XLA (one program per structure, {members} of its executions at a "
                    "time; --use_xla true trains up to 16 in the same kernels)")
        size = "automatic" if not self.members else f"up to {self.members}"
        return f"members {size} (one program per structure; its executions trained in the same kernels, XLA)"


def structure_key(point, seed=None):
    """What fixes a grid point's program: every hparam but those read per member, and the execution's
    `seed` where the rule's step reads a constant derived from it (`Rule.seed_in_step`)."""
    key = tuple(sorted((name, repr(value)) for name, value in point.items() if name not in VARIABLE_HPARAMS))
    if seed is not None and _seed_in_step(point.get("algorithm")):
        key += (("seed", int(seed)),)
    return key


def _seed_in_step(algorithm):
    from bpfree.rules import registry  # the rules load Keras: only when a program is made

    return isinstance(algorithm, str) and algorithm in registry.names() and registry.rule_class(algorithm).seed_in_step


def capacity(options, executions, variables, activations, device="cpu"):
    """Members of a program: `options.members` if set, else as many of the structure's `executions` as
    `AUTO_MEMBERS` and `AUTO_MEMORY_BYTES` allow for a member of `variables` state floats and
    `activations` floats per step; never more than `executions` (a spare member costs and trains nothing)."""
    if options.members:
        return max(1, min(options.members, executions))
    per_member = 4 * (variables + 3 * activations)
    by_memory = max(1, AUTO_MEMORY_BYTES[device] // max(per_member, 1))
    return max(1, min(executions, AUTO_MEMBERS[device], by_memory))


def points_per_trial(options, jit_compile, executions_per_trial, device="cpu"):
    """Grid points one keras-tuner trial holds at most (its cohort, `bpfree.tuning.trials`): enough of one
    structure for their executions to fill a program of the most members `options` allows on `device`; one
    where each execution trains alone (``fit``, or programs of one member)."""
    if options.fit:
        return 1
    most = options.members or (AUTO_MEMBERS[device] if jit_compile else AUTO_MEMBERS_WITHOUT_XLA)
    return max(1, -(-most // executions_per_trial))


def program_members(options, jit_compile, executions, variables, activations, device="cpu"):
    """Members of a structure's program. A member's numbers must not depend on how many members share
    its program. Under XLA they do not, from two members on (one member is a degenerate batch, which XLA
    turns into a plain matmul summed in another order): `capacity`, at least `MIN_MEMBERS`. Without XLA
    TensorFlow's batched matmul sums in an order that depends on the member count, so every program of
    the search has the same number, whatever the grid: `options.members`, or `AUTO_MEMBERS_WITHOUT_XLA`."""
    if not jit_compile:
        return options.members or AUTO_MEMBERS_WITHOUT_XLA
    return max(MIN_MEMBERS, capacity(options, executions, variables, activations, device))
