"""`StackedMembers`: K independent models trained in one compiled step, each on its own batch.

Member k is an ordinary compiled `RuleModel` (built by `build_model` with its own seed, compiled with
its own optimizer, e.g. its own learning rate) and keeps its own weights, feedback matrices, dropout
state and optimizer state; nothing is shared. One step of the stack, on batches (x_k, y_k), k = 1..K:

    (forward_k, ℓ_k, J_k) = member_k.rule_objective(x_k, y_k)        J_k = L_k + Σ_j ℓ_{k,j}
    g_k = ∂J_k / ∂θ_k                                                (member k's own tape)
    a_k ← a_k ∧ finite(L_k) ∧ finite(J_k)                            (when freeze_non_finite)
    if a_k: optimizer_k.apply(g_k, θ_k)                              (after every g is computed)

so member k's update is exactly the one its own `train_step` makes on (x_k, y_k): the same pieces
(`RuleModel.rule_objective`, `optimizer.scale_loss`, `bpfree.optimizers.apply_after`) in the same order.
All K steps are one `tf.function` (one XLA program with ``jit_compile=True``); the stack runs the K
members' ops side by side, it does not vectorize them.

The mask a (a non-trainable bool variable, `active`) freezes members: a frozen member's update runs
under a `tf.cond` branch that is not taken, so neither its weights nor its optimizer's slots and
iteration count move. With ``freeze_non_finite`` (the default) a member whose loss or surrogate is
not finite is frozen on that step, before its update: one member's divergence touches no other.

Batches: x and y are K batches, either a tuple/list of K tensors or one tensor of shape (K, N, ...)
(`train_on_batch`, tf.data; `fit` and `evaluate` slice arrays on their first axis, so give them a
tuple of K arrays or `stack_datasets`); x may also be one batch (N, ...) that every member sees (told
apart by its rank; a stacked tensor and a single batch through the same step function are refused). Logs are
per member: ``loss_k`` (each member's compiled loss, as its own ``loss``) and, for the metrics given
to `compile`, ``<name>_k``. The stack is not saved as a whole: save its members (`members`).
"""

import keras
import tensorflow as tf

from bpfree import arch as arch_lib
from bpfree import metrics as bpfree_metrics
from bpfree import optimizers
from bpfree.models.base import RuleModel


def stack_datasets(datasets):
    """One `tf.data.Dataset` of K batches from K datasets of (x, y) batches (one a member, each with its
    own order): its elements are ((x_1, .., x_K), (y_1, .., y_K)); it ends with the shortest."""
    zipped = tf.data.Dataset.zip(tuple(datasets))
    return zipped.map(lambda *batches: (tuple(b[0] for b in batches), tuple(b[1] for b in batches)))


class StackedMembers(keras.Model):
    """K compiled `RuleModel`s (`members`) trained together, each on its own batch; see the module docstring."""

    def __init__(self, members, freeze_non_finite=True, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        _check_members(members)
        self.members = members
        self.freeze_non_finite = bool(freeze_non_finite)
        self.active = self.add_weight(shape=(len(members),), initializer="ones", dtype="bool", trainable=False,
                                      name="active")
        for member in members:
            # Slots are created here, outside the step: never inside a tf.cond branch.
            member.optimizer.build(member.trainable_variables)
        self._member_metrics = [[keras.metrics.Mean(name=f"loss_{k}")] for k in range(len(members))]
        self.built = True

    @property
    def size(self):
        """K, the number of members."""
        return len(self.members)

    def compile(self, metrics=None, jit_compile="auto", run_eagerly=False, steps_per_execution=1):
        """`metrics`: names (``"error_rate"`` understood) or functions, one copy of each per member;
        the optimizers are the members' own."""
        super().compile(optimizer=None, loss=None, jit_compile=jit_compile, run_eagerly=run_eagerly,
                        steps_per_execution=steps_per_execution)
        self._member_metrics = [[keras.metrics.Mean(name=f"loss_{k}")]
                                + [_member_metric(m, k) for m in (metrics or [])] for k in range(self.size)]

    @property
    def metrics(self):
        return [m for per_member in self._member_metrics for m in per_member]

    def freeze(self, k):
        """Stops member k's updates (weights and optimizer state stay as they are)."""
        self.active.assign(tf.tensor_scatter_nd_update(self.active, [[k]], [False]))

    def active_members(self):
        """The mask as a list of Python bools, member 0 first."""
        return [bool(a) for a in keras.ops.convert_to_numpy(self.active)]

    def call(self, inputs, training=None):
        """Each member on its own batch (or all on one batch): a list of K predictions."""
        return [m(x, training=training) for m, x in zip(self.members, self._split(inputs, None, None)[0])]

    # --------------------------------------------------------------------------------- steps
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        xs, ys, sws = self._split(x, y, sample_weight)
        active = tf.unstack(tf.convert_to_tensor(self.active))
        steps = []
        for member, x_k, y_k, sw_k in zip(self.members, xs, ys, sws):
            with tf.GradientTape() as tape:
                forward, local, objective = member.rule_objective(x_k, y_k, sw_k)
                scaled = member.optimizer.scale_loss(objective)
            variables = member.trainable_variables
            steps.append((forward, local, objective, variables, tape.gradient(scaled, variables)))
        # Every gradient of every member is computed before any update (apply_after's rule, stack-wide).
        after = [[forward.y_pred, local, grads] for forward, local, _, _, grads in steps]
        flags = []
        for k, (member, (forward, local, objective, variables, grads)) in enumerate(zip(self.members, steps)):
            go = active[k]
            if self.freeze_non_finite:
                go = tf.logical_and(go, tf.logical_and(_finite(forward.loss), _finite(objective)))
            tf.cond(go, _update(member.optimizer, grads, variables, after), lambda: tf.constant(False))
            flags.append(go)
        self.active.assign(tf.stack(flags))
        return self._update_metrics(xs, ys, sws, [s[0].loss for s in steps], [s[0].y_pred for s in steps])

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        xs, ys, sws = self._split(x, y, sample_weight)
        losses, preds = [], []
        for member, x_k, y_k, sw_k in zip(self.members, xs, ys, sws):
            y_pred = member(x_k, training=False)
            preds.append(y_pred)
            losses.append(member.compute_loss(x=x_k, y=y_k, y_pred=y_pred, sample_weight=sw_k, training=False))
        return self._update_metrics(xs, ys, sws, losses, preds)

    def _update_metrics(self, xs, ys, sws, losses, preds):
        logs = {}
        for k, (x_k, y_k, sw_k, loss, y_pred) in enumerate(zip(xs, ys, sws, losses, preds)):
            loss_metric, *others = self._member_metrics[k]
            loss_metric.update_state(loss, sample_weight=tf.shape(x_k)[0])
            for metric in others:
                metric.update_state(y_k, y_pred, sample_weight=sw_k)
            logs.update({m.name: m.result() for m in self._member_metrics[k]})
        return logs

    def _split(self, x, y, sample_weight):
        """(xs, ys, sws), K of each, one a member. x is K batches when it is a tuple/list of K or a tensor
        of rank (example rank + 2), stacked on its first axis; y and sample_weight then are too.
        Otherwise x is one batch and every member sees it (with the same y and sample_weight)."""
        if isinstance(x, (tuple, list)):
            stacked = True
        elif x.shape.rank is None:
            # tf.function relaxes a signature seen with both ranks to an unknown rank.
            raise ValueError("StackedMembers: one step function was given both a single batch and K batches "
                             "stacked in one tensor; give K batches as a tuple of K tensors instead.")
        else:
            stacked = x.shape.rank == self._example_rank + 2
        return tuple(self._unstack(v) if stacked else [v] * self.size for v in (x, y, sample_weight))

    def _unstack(self, value):
        if value is None:
            return [None] * self.size
        if isinstance(value, (tuple, list)):
            if len(value) != self.size:
                raise ValueError(f"Expected {self.size} batches, one a member; got {len(value)}.")
            return list(value)
        if value.shape[0] is not None and value.shape[0] != self.size:
            raise ValueError(f"Expected {self.size} batches stacked on the first axis; got shape {value.shape}.")
        return [value[k] for k in range(self.size)]

    @property
    def _example_rank(self):
        member = self.members[0]
        config = getattr(member, "network_config", member)
        return len(arch_lib.input_shape(config.input_dim))

    def get_config(self):
        return {"name": self.name, "freeze_non_finite": self.freeze_non_finite, "size": self.size}


def _update(optimizer, grads, variables, after):
    def apply():
        optimizers.apply_after(optimizer, grads, variables, after=after)
        return tf.constant(True)

    return apply


def _finite(x):
    return tf.reduce_all(tf.math.is_finite(x))


def _member_metric(metric, k):
    """A fresh metric object for member k from a name or a function."""
    if isinstance(metric, str):
        resolved = bpfree_metrics.resolve([metric])[0]
        if not isinstance(resolved, str):
            return bpfree_metrics.ErrorRate(name=f"error_rate_{k}")
        metric = keras.metrics.get(metric)
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config({**metric.get_config(), "name": f"{metric.name}_{k}"})
    return keras.metrics.MeanMetricWrapper(metric, name=f"{getattr(metric, '__name__', 'metric')}_{k}")


def _check_members(members):
    """Refuses what the stack cannot train as the members' own train steps would, naming the member."""
    if not members:
        raise ValueError("StackedMembers needs at least one member.")
    if len({id(m) for m in members}) != len(members):
        raise ValueError("StackedMembers: a model appears twice among the members; build one model a member.")
    seen = {}
    for k, m in enumerate(members):
        if not isinstance(m, RuleModel) or type(m).train_step is not RuleModel.train_step:
            raise ValueError(f"Member {k} ({type(m).__name__}) has no shared rule train step; StackedMembers "
                             "trains feedforward and invertible networks (Network, InvertibleNetwork).")
        if not m.compiled or m.optimizer is None:
            raise ValueError(f"Member {k} is not compiled; compile each member with its own optimizer first.")
        if m.trackers:
            raise ValueError(f"Member {k} has trackers {list(m.trackers)}; StackedMembers does not compute them.")
        for v in [*m.trainable_variables, m.optimizer]:
            if id(v) in seen:
                raise ValueError(f"Members {seen[id(v)]} and {k} share {getattr(v, 'path', v)}; members share nothing.")
            seen[id(v)] = k
