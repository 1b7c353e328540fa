"""`MemberProgram`: the executions of one structure trained in the same kernels.

A grid search trains many small networks that share a *structure* (rule, arch, activation, ...:
everything but the learning rate and the seed). A program holds M *members*, each the state of one
execution — weights, fixed feedback matrices, dropout seed states, optimizer slots, its learning rate,
its metrics — stacked on a leading member axis: variable v of the model becomes V of shape (M, *v.shape).
One call trains every member for one epoch:

    for step i = 0 .. S−1:                                        (a tf.while_loop)
        for every member m, in the same kernels:                  (tf.vectorized_map over m)
            batch_m   = batch(π_m[iB : min((i+1)B, n)])           π_m = epoch_permutation(n, seed_m, e)
            J_m       = the rule's surrogate on batch_m, read from member m's state
            state'_m  = optimizer update of state_m by ∂J_m/∂θ_m  (the optimizer's own update_step)
        state_m ← state'_m where active_m;  active_m ← active_m ∧ finite(L_m)

`tf.vectorized_map` turns the member loop into batched ops: a dense layer's (B, in) @ (in, out) per
member becomes one (M, B, in) @ (M, in, out) batched matmul, so M members issue the kernels of one,
M times larger. Each member's numbers are those of the same execution trained alone: its own
batches (`epoch_permutation`, `batch_maker`: the pipeline's functions), its own state, its own
update; a member whose loss stops being finite is frozen (keras' TerminateOnNaN, per member) while
the others go on. A second call evaluates every member on a split (the same batches for all).

The step reads a model's state as values, not variables (`keras.StatelessScope`), which is what
lets one traced step serve every member. Keras's TensorFlow optimizer refuses `stateless_apply` (its
updates write through to `tf.Variable`s, for tf.distribute), so `_apply_update` calls the optimizer's
own `update_step` per variable with its writes redirected to values: the update equations stay
Keras's (SGD, Adam, bpfree's Adam variants).

Where an op has no vectorized form (TensorFlow's converter falls back to a loop over members for
stateless random ops — dropout masks — and for convolutions whose filters differ per member), the
program says why (`fallback`) and computes the members one after another inside the same compiled
step instead: the same numbers, without the shared kernels.
"""

import keras
import numpy as np
import tensorflow as tf

from bpfree import checkpoints
from bpfree.datasets.pipeline import epoch_permutation


class ModelState:
    """A compiled model's variables in four groups, in a fixed order: trainable (the order the optimizer
    was built with), other model variables (feedback matrices, seed states, batch-norm statistics),
    optimizer variables (iteration, learning rate, slots) and metric variables."""

    def __init__(self, model):
        checkpoints.state_variables(model)  # builds the optimizer's slots
        metrics = list(model.metrics_variables)
        taken = {id(v) for v in metrics}
        self.trainable = list(model.trainable_variables)
        taken |= {id(v) for v in self.trainable}
        self.other = [v for v in model.non_trainable_variables if id(v) not in taken]
        self.optimizer = list(model.optimizer.variables)
        self.metrics = metrics
        self.all = self.trainable + self.other + self.optimizer + self.metrics

    def split(self, values):
        a, b, c = len(self.trainable), len(self.other), len(self.optimizer)
        return values[:a], values[a:a + b], values[a + b:a + b + c], values[a + b + c:]


def prepare(model, split):
    """Builds what a compiled model creates lazily (optimizer slots; metric state, from one batch of
    `split`), so that its variables are complete before a program stacks them."""
    checkpoints.state_variables(model)
    x, y = split.make_batch(tf.range(min(2, split.n)))
    model.compute_metrics(x, y, model(x, training=False))
    model.reset_metrics()


def unvectorizable(model):
    """Why `model`'s executions cannot be members of a program (a reason to log), or None: the program
    runs the shared train step of `RuleModel` (models with their own step, GLE and Forward-Forward, and
    tracker metrics, which need a second backprop pass per batch, train through `fit`) with a plain
    optimizer (no clipping, optimizer weight decay, EMA or gradient accumulation)."""
    from bpfree.models.base import RuleModel

    if not isinstance(model, RuleModel) or type(model).train_step is not RuleModel.train_step:
        return f"{type(model).__name__} has its own train step"
    if model.tracker_metrics:
        return "tracker metrics need a backprop pass beside the rule's"
    o = model.optimizer
    for name in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "gradient_accumulation_steps",
                 "loss_scale_factor"):
        if getattr(o, name, None):
            return f"its optimizer sets {name}"
    if getattr(o, "use_ema", False):
        return "its optimizer uses EMA"
    return None


class MemberProgram:
    """M members of one structure, trained and evaluated in the same kernels; see the module docstring.

    `template`: a compiled model of the structure (its variables are the keys the traced step reads
    members' values through; their own values are never read). `train`: the `InMemorySplit` every
    member trains on."""

    def __init__(self, template, capacity, train, batch_size, jit_compile=False):
        self.template = template
        self.capacity = int(capacity)
        self.train_split = train
        self.batch_size = int(batch_size)
        self.steps = -(-train.n // self.batch_size)
        self.jit_compile = bool(jit_compile)
        prepare(template, train)
        self.state = ModelState(template)
        template.reset_metrics()
        self._metrics_zero = [tf.constant(v.numpy()) for v in self.state.metrics]
        first = len(self.state.trainable) + len(self.state.other)
        rates = [first + i for i, v in enumerate(self.state.optimizer) if v.name == "learning_rate"]
        if len(rates) != 1:
            raise ValueError(f"{type(template.optimizer).__name__} keeps no one learning_rate variable; a program "
                             "reads each member's learning rate from it.")
        self._learning_rate_index = rates[0]
        self._train_only = {m.name for m in template.train_only_metrics}
        m = self.capacity
        self.values = [tf.Variable(tf.zeros((m, *v.shape), v.dtype), trainable=False) for v in self.state.all]
        self._read_slot = tf.function(lambda k: [v[k] for v in self.values], autograph=False,
                                      input_signature=[tf.TensorSpec((), tf.int32)])
        self.fallback = None  # why members are computed one after another, if they are
        self.vectorized = True
        # autograph=False: the loops are written as tf.while_loop, Keras's steps need no conversion.
        epoch_signature = [tf.TensorSpec((m,), tf.int64), tf.TensorSpec((), tf.int64), tf.TensorSpec((m,), tf.bool)]
        x, y = train.x, train.y
        eval_signature = [tf.TensorSpec((m,), tf.bool), tf.TensorSpec((None, *x.shape[1:]), x.dtype),
                          tf.TensorSpec((None, *y.shape[1:]), y.dtype)]
        if m == 1:  # one member: its step as it is, nothing to vectorize
            self.vectorized = False
            self._epoch = self._trace(self._train_epoch, epoch_signature)
            self._evaluate = self._trace(self._evaluate_all, eval_signature)
            return
        try:
            self._epoch = self._trace(self._train_epoch, epoch_signature)
            self._evaluate = self._trace(self._evaluate_all, eval_signature)
        except ValueError as e:  # tf.vectorized_map's refusal of an op it can only loop over
            self.vectorized = False
            self.fallback = str(e).split("\n")[0].strip()[:160]
            self._epoch = self._trace(self._train_epoch, epoch_signature)
            self._evaluate = self._trace(self._evaluate_all, eval_signature)

    @staticmethod
    def _trace(function, signature):
        traced = tf.function(function, autograph=False, input_signature=signature)
        traced.get_concrete_function()
        return traced

    # ------------------------------------------------------------------------------ members in and out
    def load(self, slot, model):
        """Copies `model`'s state (built and compiled like the template) into member `slot`."""
        source = ModelState(model).all
        if [tuple(v.shape) for v in source] != [tuple(v.shape[1:]) for v in self.values]:
            raise ValueError(f"Model {model.name} does not have the structure of the program's members.")
        for target, v in zip(self.values, source):
            target[slot].assign(v)

    def unload(self, slot, model):
        """Copies member `slot`'s state into `model` (its checkpoint is then the member's)."""
        for v, value in zip(ModelState(model).all, self._read_slot(tf.constant(slot, tf.int32))):
            v.assign(value)

    def train_logs(self, slot, model):
        """Member `slot`'s training logs of the last epoch (its metric state copied into `model`'s metrics)."""
        first = len(self.values) - len(self.state.metrics)
        for v, source in zip(ModelState(model).metrics, self.values[first:]):
            v.assign(source[slot])
        return {name: float(np.asarray(value)) for name, value in model.get_metrics_result().items()}

    def set_learning_rate(self, slot, model):
        """Member `slot`'s learning rate from `model`'s optimizer (a schedule sets it before each epoch)."""
        self.values[self._learning_rate_index][slot].assign(model.optimizer.learning_rate)

    # ------------------------------------------------------------------------------ calls
    def train_epoch(self, seeds, epoch, active):
        """One epoch of every active member, member k in the order drawn from (seeds[k], epoch); returns
        active after the epoch. Training logs are read from a member's model after `unload`."""
        self._reset_metrics()
        active = self._epoch(tf.constant(seeds, tf.int64), tf.constant(epoch, tf.int64), tf.constant(active, tf.bool))
        return [bool(a) for a in active.numpy()]

    def evaluate(self, active, split, models):
        """Every active member on the whole of `split` (an `InMemorySplit` of the program's input shape), in
        batches of the training batch size as `fit`'s validation; per member its logs as floats (via
        `models[k]`, whose metric state this overwrites)."""
        metrics = self._evaluate(tf.constant(active, tf.bool), split.x, split.y)
        out = []
        for k, model in enumerate(models):
            if model is None or not active[k]:
                out.append(None)
                continue
            for v, value in zip(ModelState(model).metrics, metrics):
                v.assign(value[k])
            out.append({name: float(np.asarray(value)) for name, value in model.get_metrics_result().items()
                        if name not in self._train_only})
        return out

    def _reset_metrics(self):
        first = len(self.values) - len(self.state.metrics)
        for target, zero in zip(self.values[first:], self._metrics_zero):
            target.assign(tf.broadcast_to(zero, target.shape))

    # ------------------------------------------------------------------------------ traced
    def _members(self, function, elements, vectorize=True):
        """`function` over the member axis of `elements`: vectorized, or (`fallback`, or ``vectorize=False``)
        one member after another."""
        if self.vectorized and vectorize:
            return tf.vectorized_map(function, elements, fallback_to_while_loop=False)
        outputs = [function(tf.nest.map_structure(lambda t, k=k: t[k], elements)) for k in range(self.capacity)]
        return tf.nest.map_structure(lambda *ts: tf.stack(ts), *outputs)

    def _train_epoch(self, seeds, epoch, active):
        n, b = self.train_split.n, self.batch_size
        indices = tf.stack([epoch_permutation(n, seeds[k], epoch) for k in range(self.capacity)])
        step = tf.function(self._train_step, jit_compile=self.jit_compile, reduce_retracing=True, autograph=False)

        def body(i, active):
            start = i * b
            return i + 1, step(indices[:, start:tf.minimum(start + b, n)], active)

        _, active = tf.while_loop(lambda i, _: i < self.steps, body, (tf.constant(0), active))
        return active

    def _train_step(self, indices, active):
        values = [v.read_value() for v in self.values]
        new_values, loss = self._members(self._train_member, (values, indices))
        for v, old, new in zip(self.values, values, new_values):
            v.assign(tf.where(_along(active, new), new, old))
        return tf.logical_and(active, tf.math.is_finite(tf.cast(loss, tf.float32)))

    def _train_member(self, elements):
        """One member's train step as a function of its state: `RuleModel.train_step`'s equations."""
        values, indices = elements
        model, state = self.template, self.state
        x, y = self.train_split.make_batch(indices)
        trainable, other, optimizer, metrics = state.split(list(values))
        # Every variable mapped, the optimizer's too: a rule may read its step count (DTP's noise schedule).
        mapping = list(zip(state.trainable, trainable)) + list(zip(state.other, other)) + \
            list(zip(state.optimizer, optimizer)) + list(zip(state.metrics, metrics))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                forward, local, objective = model.rule_objective(x, y)
                model._loss_tracker.update_state(forward.loss, sample_weight=tf.shape(x)[0])
                objective = model.optimizer.scale_loss(objective)
            grads = tape.gradient(objective, trainable)
            for metric in model.rule_metrics:
                metric.update_state(local[metric.name])
            model.compute_metrics(x, y, forward.y_pred)
            other = [_current(scope, v, old) for v, old in zip(state.other, other)]
            metrics = [_current(scope, v, old) for v, old in zip(state.metrics, metrics)]
        trainable, optimizer = _apply_update(model.optimizer, grads, state.trainable, trainable,
                                             state.optimizer, optimizer)
        return trainable + other + optimizer + metrics, forward.loss

    def _evaluate_all(self, active, x, y):
        make_batch = self.train_split.batches(x, y)
        n, b = tf.shape(x, out_type=tf.int32)[0], self.batch_size
        count = len(self.state.metrics)
        params = [v.read_value() for v in self.values[:len(self.values) - count]]
        zeros = [tf.broadcast_to(z, (self.capacity, *z.shape)) for z in self._metrics_zero]
        step = tf.function(self._evaluate_step, reduce_retracing=True, autograph=False)

        def body(i, metrics):
            batch = make_batch(tf.range(i * b, tf.minimum((i + 1) * b, n)))
            return i + 1, step(params, metrics, batch)

        _, metrics = tf.while_loop(lambda i, _: i * b < n, body, (tf.constant(0), zeros))
        return metrics

    def _evaluate_step(self, params, metrics, batch):
        # Members are evaluated one after another, without XLA: vectorized or fused by XLA, a metric's
        # reductions were summed in another order at another member count (one ulp of val_loss), and a
        # member's numbers must not depend on how many share its program.
        batch = tf.nest.map_structure(lambda t: tf.repeat(t[None], self.capacity, axis=0), batch)

        def member(elements):
            values, metric_values, member_batch = elements
            state = self.state
            trainable, other, optimizer, _ = state.split(list(values) + [None] * len(state.metrics))
            mapping = list(zip(state.trainable, trainable)) + list(zip(state.other, other)) + \
                list(zip(state.optimizer, optimizer)) + list(zip(state.metrics, metric_values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                self.template.test_step(member_batch)
                return [_current(scope, v, old) for v, old in zip(state.metrics, metric_values)]

        return self._members(member, (params, metrics, batch), vectorize=False)


def _current(scope, variable, old):
    value = scope.get_current_value(variable)
    return old if value is None else value


def _along(flags, like):
    """`flags` (M,) shaped to broadcast against `like` (M, ...)."""
    return tf.reshape(flags, [-1] + [1] * (len(like.shape) - 1))


def _apply_update(optimizer, grads, variables, values, optimizer_variables, optimizer_values):
    """`optimizer.apply(grads, variables)` as a function of values: (new values, new optimizer values).

    Keras's TensorFlow optimizer writes through to tf.Variables (its `assign*` unwrap Keras variables,
    for tf.distribute) and so refuses `stateless_apply`; here its own `update_step` runs per variable
    with those writes redirected — optimizer variables into a `StatelessScope`, model variables into
    the returned values — then the iteration count is advanced, as `apply` does (`unvectorizable`
    refuses the options `apply` would add: clipping, weight decay, EMA, accumulation, loss scaling)."""
    current = {id(v): value for v, value in zip(variables, values)}
    new = dict(current)

    def redirect(op):
        def write(variable, value):
            key = id(variable)
            if key not in current:
                return getattr(variable, op)(value)
            value = tf.cast(value, variable.dtype)
            new[key] = value if op == "assign" else (current[key] + value if op == "assign_add" else current[key] - value)
        return write

    with keras.StatelessScope(state_mapping=list(zip(optimizer_variables, optimizer_values))) as scope:
        optimizer.assign, optimizer.assign_add, optimizer.assign_sub = (redirect(op) for op in
                                                                          ("assign", "assign_add", "assign_sub"))
        try:
            learning_rate = optimizer.learning_rate
            for grad, variable in zip(grads, variables):
                if grad is not None:  # as `apply`: a variable without a gradient is left as it is
                    optimizer.update_step(grad, variable, learning_rate)
            optimizer.iterations.assign_add(1)
        finally:
            del optimizer.assign, optimizer.assign_add, optimizer.assign_sub
        optimizer_values = [_current(scope, v, old) for v, old in zip(optimizer_variables, optimizer_values)]
    return [new[id(v)] for v in variables], optimizer_values
