"""`GroupProgram`: many executions of a search trained by one compiled program.

A grid search trains hundreds of small networks; one at a time, most of an execution's wall time is
fixed cost (tracing and compiling its steps anew, building its input pipeline, `fit`'s per-step
dispatch), not math (bench/grid_throughput.py). A program holds K *slots*, each an ordinary compiled
`RuleModel` of one structure (rule, arch, activation, ... everything but the learning rate); an
execution is trained in a slot after its own model's state (weights, feedback matrices, dropout seed
state, optimizer slots and learning rate: `bpfree.checkpoints.state_variables`) is copied into it.
Nothing is shared between slots, so slot k's numbers are those its execution's own `fit` gives.

One call trains every slot for one epoch:

    for step i = 0 .. S−1:                                     (a tf.while_loop in one graph)
        for slot k with active_k:                              (a tf.cond per slot)
            indices_k = π_k[iB : min((i+1)B, n)]               π_k = epoch_permutation(n, seed_k, e)
            logs_k = model_k.train_step(batch(indices_k))      (the model's own train step)
            active_k ← finite(logs_k["loss"])                  (keras' TerminateOnNaN, per slot)

so slot k sees the batches, in the order, that `bpfree.datasets.pipeline` gives its execution
(`epoch_permutation`, `batch_maker`: the same functions), and a slot whose loss stops being finite
is frozen for the rest of the epoch while the others go on. A second call evaluates every slot that
trained on the validation split, or on the test split at the end (`model_k.test_step`). Both calls are traced once per program, with
dynamic batch sizes (the short last batch runs through the same graph: nothing is traced twice) and
weights, optimizer state and learning rates read from variables, so later executions of the same
structure reuse the program without tracing anything. With ``jit_compile`` the step of all K slots is
one XLA program (compiled once per batch shape, i.e. twice per program when the split does not divide).

The training and validation splits are tensors held in memory once for the whole search.
"""

import numpy as np
import tensorflow as tf

from bpfree import checkpoints
from bpfree.datasets.pipeline import batch_maker, epoch_permutation


class InMemorySplit:
    """A split as tensors (x, y), and how index batches of it become model batches (`batch_maker`)."""

    def __init__(self, x, y, meta, problem_type, flatten):
        self.x = tf.constant(x) if not tf.is_tensor(x) else x
        self.y = tf.constant(y) if not tf.is_tensor(y) else y
        self.n = int(self.x.shape[0])
        self.meta, self.problem_type, self.flatten = meta, problem_type, flatten
        self.make_batch = self.batches(self.x, self.y)

    def batches(self, x, y):
        """The batch function over tensors x, y (this split's, or a traced function's inputs)."""
        return batch_maker(x, y, self.meta, self.problem_type, self.flatten)

    def view(self, flatten):
        """The same tensors batched for another input shape (flat or image)."""
        return InMemorySplit(self.x, self.y, self.meta, self.problem_type, flatten)


class GroupProgram:
    """K slots (compiled models of one structure) and the two compiled functions that train and
    evaluate them; see the module docstring."""

    def __init__(self, models, train, batch_size, jit_compile=False):
        self.models = list(models)
        self.train_split = train
        self.batch_size = int(batch_size)
        self.steps = -(-train.n // self.batch_size)
        self.jit_compile = bool(jit_compile)
        for model in self.models:
            checkpoints.state_variables(model)  # optimizer slots are built here, outside the graph
        self._train_only = [{m.name for m in model.train_only_metrics} for model in self.models]
        k = len(self.models)
        # autograph=False: the loops and conditionals are written as tf.while_loop / tf.cond, and Keras's
        # train and test steps need no conversion (converting them cost seconds per process).
        self._step = tf.function(self._train_step, jit_compile=self.jit_compile, reduce_retracing=True,
                                 autograph=False)
        self._epoch = tf.function(self._train_epoch, autograph=False, input_signature=[
            tf.TensorSpec((k,), tf.int64), tf.TensorSpec((), tf.int64), tf.TensorSpec((k,), tf.bool)])
        # Evaluation takes the split as input: one trace serves validation and test.
        self._evaluate = tf.function(self._evaluate_all, autograph=False, input_signature=[
            tf.TensorSpec((k,), tf.bool), tf.TensorSpec((None, *train.x.shape[1:]), train.x.dtype),
            tf.TensorSpec((None, *train.y.shape[1:]), train.y.dtype)])

    @property
    def size(self):
        return len(self.models)

    def load(self, slot, model):
        """Copies `model`'s state (built and compiled like the slot's) into slot `slot`."""
        target = checkpoints.state_variables(self.models[slot])
        source = checkpoints.state_variables(model)
        if [tuple(v.shape) for v in target] != [tuple(v.shape) for v in source]:
            raise ValueError(f"Model {model.name} does not have the structure of the program's slots.")
        for t, s in zip(target, source):
            t.assign(s)
        self.models[slot].stop_training = False

    def train_epoch(self, seeds, epoch, active):
        """One epoch of every active slot, slot k in the order drawn from (seeds[k], epoch); returns
        (active after the epoch, per slot its training logs as floats)."""
        self._reset_metrics()
        active, logs = self._epoch(tf.constant(seeds, tf.int64), tf.constant(epoch, tf.int64),
                                   tf.constant(active, tf.bool))
        return [bool(a) for a in active.numpy()], _floats(logs)

    def evaluate(self, active, split):
        """Every active slot on the whole of `split` (an `InMemorySplit` of this program's input shape),
        in batches of the training batch size as `fit`'s validation; per slot its logs as floats."""
        self._reset_metrics()
        return _floats(self._evaluate(tf.constant(active, tf.bool), split.x, split.y))

    def _reset_metrics(self):
        # Eagerly: a traced reset of Keras's compile metrics is a no-op when they are built later in the
        # same trace (CompileMetrics.reset_state returns while not built), and they are built by the first step.
        for model in self.models:
            model.reset_metrics()

    # ------------------------------------------------------------------------------ traced
    def _train_epoch(self, seeds, epoch, active):
        permutations = [epoch_permutation(self.train_split.n, seeds[k], epoch) for k in range(self.size)]
        indices = tf.stack(permutations)
        n, b = self.train_split.n, self.batch_size

        def body(i, active):
            start = i * b
            return i + 1, self._step(indices[:, start:tf.minimum(start + b, n)], active)

        _, active = tf.while_loop(lambda i, _: i < self.steps, body, (tf.constant(0), active))
        return active, [model.get_metrics_result() for model in self.models]

    def _train_step(self, indices, active):
        flags = []
        for k, model in enumerate(self.models):
            def step(model=model, k=k):
                logs = model.train_step(self.train_split.make_batch(indices[k]))
                return tf.reduce_all(tf.math.is_finite(tf.cast(logs["loss"], tf.float32)))

            flags.append(tf.cond(active[k], step, lambda: tf.constant(False)))
        return tf.stack(flags)

    def _evaluate_all(self, active, x, y):
        make_batch = self.train_split.batches(x, y)
        n, b = tf.shape(x, out_type=tf.int32)[0], self.batch_size

        def body(i):
            batch = make_batch(tf.range(i * b, tf.minimum((i + 1) * b, n)))
            done = []
            for k, model in enumerate(self.models):
                def step(model=model):
                    model.test_step(batch)
                    return tf.constant(True)

                done.append(tf.cond(active[k], step, lambda: tf.constant(False)))
            with tf.control_dependencies(done):
                return i + 1

        tf.while_loop(lambda i: i * b < n, body, (tf.constant(0),))
        return [{name: value for name, value in model.get_metrics_result().items() if name not in names}
                for model, names in zip(self.models, self._train_only)]


def _floats(per_slot_logs):
    return [{name: float(np.asarray(value)) for name, value in logs.items()} for logs in per_slot_logs]


# Executions a program trains side by side, by default (`--group_size`). One: on 2 CPU cores a program
# of one slot ran the small grid 2.0x the trials per hour of four slots (bench/grid_throughput.py, 3
# interleaved repetitions), since K slots have no idle core to use and each slot is traced on its own;
# the program per structure, traced once and reused by every execution of its structure, is what pays.
# More slots may pay on a GPU (unmeasured: the device machine has no TensorFlow).
DEFAULT_GROUP_SIZE = 1

# Hparams a program reads from variables (copied into a slot with the model's state): trials that differ
# only in these share a structure.
VARIABLE_HPARAMS = ("lr",)


def structure_key(point):
    """What fixes a grid point's compiled program: every hparam but those read from variables."""
    return tuple(sorted((name, repr(value)) for name, value in point.items() if name not in VARIABLE_HPARAMS))


def unstackable(model):
    """Why `model` cannot train in a program slot (a reason to log), or None if it can: the slot runs
    the shared `RuleModel.train_step`; models with their own train step (GLE, Forward-Forward) and
    tracker metrics (which `fit` computes per batch from both gradients) train one at a time."""
    from bpfree.models.base import RuleModel

    if not isinstance(model, RuleModel) or type(model).train_step is not RuleModel.train_step:
        return f"{type(model).__name__} has its own train step"
    return None
