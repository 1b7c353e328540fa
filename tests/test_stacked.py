"""`StackedMembers`: a member trained in the stack equals the same model trained alone, on CPU, in graph
and XLA modes: weights, feedback matrices, dropout seed states and optimizer state (Adam's moments,
iteration count) after every epoch; a frozen or diverged member moves nothing and disturbs no other.

Each member has its own seed, learning rate and data order, so feeding a member another's batch, or
applying one member's gradient with another's optimizer, makes the comparison fail.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import build_model
from bpfree.models.stacked import StackedMembers, stack_datasets

LRS = (1e-3, 3e-3, 1e-2)
N, STEPS, BATCH, FEATURES, CLASSES = 96, 3, 32, 16, 10


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, CLASSES, N), CLASSES).astype("float32")
    return x, y


def member(rule, k, lr, jit_compile, dropout=0.0):
    model = build_model(rule, "32-32", FEATURES, CLASSES, activation="tanh", dropout=dropout, seed=100 + 7 * k)
    model.compile(optimizer=keras.optimizers.Adam(lr), metrics=["error_rate"], jit_compile=jit_compile)
    return model


def state(model):
    """Everything a train step may change: the model's variables and its optimizer's."""
    return [np.array(v) for v in [*model.variables, *model.optimizer.variables]]


def assert_same(stacked, alone, what):
    a, b = state(stacked), state(alone)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7, err_msg=what)


def orders(epoch, k):
    """Member k's data order in `epoch`: its own permutation."""
    return np.random.default_rng(1000 * k + epoch).permutation(N)


def train_and_compare(rule, lrs, jit_compile, dropout=0.0, epochs=3, prepare=None, skip=()):
    """Trains a stack and each member's twin alone on the same batches; compares after every epoch
    (members in `skip` are not compared). Returns the stack and the twins."""
    x, y = data()
    stack = StackedMembers([member(rule, k, lr, jit_compile, dropout) for k, lr in enumerate(lrs)])
    stack.compile(metrics=["error_rate"], jit_compile=jit_compile)
    twins = [member(rule, k, lr, jit_compile, dropout) for k, lr in enumerate(lrs)]
    if prepare:
        prepare(stack)
    start = [state(m) for m in stack.members]
    for epoch in range(epochs):
        perms = [orders(epoch, k) for k in range(len(lrs))]
        for step in range(STEPS):
            idx = [p[step * BATCH:(step + 1) * BATCH] for p in perms]
            stack.train_on_batch(np.stack([x[i] for i in idx]), np.stack([y[i] for i in idx]))
            for k, twin in enumerate(twins):
                if k not in skip:
                    twin.train_on_batch(x[idx[k]], y[idx[k]])
        for k in range(len(lrs)):
            if k not in skip:
                assert_same(stack.members[k], twins[k], f"{rule} member {k} after epoch {epoch}")
    for k in range(len(lrs)):
        if k not in skip and stack.active_members()[k]:
            moved = max(np.max(np.abs(a - b)) for a, b in zip(state(stack.members[k]), start[k]))
            assert moved > 1e-4, f"member {k} did not train"
    return stack, twins


# The stack is issue 14's first block, not yet used by the search: dfa's twins, divergence and the
# refusals in the fast tier, the rest in the slow one (./test.bash -m slow).
@pytest.mark.parametrize("rule", [pytest.param("bp", marks=pytest.mark.slow), "dfa",
                                  pytest.param("drtp", marks=pytest.mark.slow),
                                  pytest.param("cce", marks=pytest.mark.slow),
                                  pytest.param("fa", marks=pytest.mark.slow)])
def test_members_equal_their_twins_graph(rule):
    train_and_compare(rule, LRS, jit_compile=False)


# XLA (each ~20 s of compiling): the slow tier.
@pytest.mark.slow
@pytest.mark.parametrize("rule", ["bp", "dfa", "fa"])
def test_members_equal_their_twins_xla(rule):
    train_and_compare(rule, LRS, jit_compile=True, epochs=2)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_members_with_dropout_equal_their_twins(jit_compile):
    train_and_compare("dfa", LRS, jit_compile=jit_compile, dropout=0.2, epochs=2)


@pytest.mark.slow
def test_fit_on_stacked_datasets_equals_fit_alone():
    """`stack_datasets` of K datasets (each its own order) through `fit`, against each twin's `fit`."""
    x, y = data()
    stack = StackedMembers([member("dfa", k, lr, False) for k, lr in enumerate(LRS)])
    stack.compile(metrics=["error_rate"], jit_compile=False)
    twins = [member("dfa", k, lr, False) for k, lr in enumerate(LRS)]
    for epoch in range(2):
        datasets = [tf.data.Dataset.from_tensor_slices((x[orders(epoch, k)], y[orders(epoch, k)])).batch(BATCH)
                    for k in range(len(LRS))]
        history = stack.fit(stack_datasets(datasets), epochs=1, verbose=0)
        for k, twin in enumerate(twins):
            alone = twin.fit(datasets[k], epochs=1, verbose=0)
            assert_same(stack.members[k], twin, f"member {k} after epoch {epoch}")
            for name in ("loss", "error_rate"):
                np.testing.assert_allclose(history.history[f"{name}_{k}"], alone.history[name], rtol=1e-5)


def test_diverging_member_is_frozen_and_disturbs_no_other():
    """Member 1's lr overflows its weights; its first non-finite loss freezes it before that step's
    update, and from then on its weights and Adam state stay put; members 0 and 2 equal their twins."""
    stack, _ = train_and_compare("dfa", (1e-3, 1e38, 1e-2), jit_compile=False, epochs=3, skip=(1,))
    assert stack.active_members() == [True, False, True]
    iterations = int(stack.members[1].optimizer.iterations.numpy())
    assert 1 <= iterations < 3 * STEPS  # it trained, then stopped
    diverged = state(stack.members[1])
    x, y = data()
    logs = stack.train_on_batch(np.stack([x[:BATCH]] * 3), np.stack([y[:BATCH]] * 3), return_dict=True)
    assert not np.isfinite(logs["loss_1"]) and np.isfinite(logs["loss_0"]) and np.isfinite(logs["loss_2"])
    for u, v in zip(state(stack.members[1]), diverged):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_frozen_member_moves_nothing(jit_compile):
    """A member frozen by hand keeps its weights, Adam's moments and iteration count; the others train
    as if alone."""
    frozen = {}

    def freeze(stack):
        stack.freeze(1)
        frozen["state"] = state(stack.members[1])

    stack, _ = train_and_compare("fa", LRS, jit_compile=jit_compile, epochs=1, prepare=freeze, skip=(1,))
    assert stack.active_members() == [True, False, True]
    assert int(stack.members[1].optimizer.iterations.numpy()) == 0
    for u, v in zip(state(stack.members[1]), frozen["state"]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.slow
def test_evaluate_on_one_shared_batch_and_on_k_batches():
    x, y = data()
    stack, twins = train_and_compare("bp", LRS, jit_compile=False, epochs=1)
    shared = stack.evaluate(x, y, return_dict=True, verbose=0)
    per_member = stack.evaluate((x, x[::-1], x), (y, y[::-1], y), return_dict=True, verbose=0)
    for k, twin in enumerate(twins):
        alone = twin.evaluate(x, y, return_dict=True, verbose=0)
        for name in ("loss", "error_rate"):
            np.testing.assert_allclose(shared[f"{name}_{k}"], alone[name], rtol=1e-5)
            np.testing.assert_allclose(per_member[f"{name}_{k}"], alone[name], rtol=1e-5)  # a permuted batch


@pytest.mark.slow
def test_members_save_and_load_after_stacked_training(tmp_path):
    x, _ = data()
    stack, _ = train_and_compare("drtp", LRS, jit_compile=False, epochs=1)
    assert stack.get_config()["size"] == len(LRS)
    for k, m in enumerate(stack.members):
        path = tmp_path / f"member_{k}.keras"
        m.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)


def test_refuses_members_it_cannot_train_as_alone():
    compiled = member("bp", 0, 1e-3, False)
    with pytest.raises(ValueError, match="appears twice"):
        StackedMembers([compiled, compiled])
    with pytest.raises(ValueError, match="not compiled"):
        StackedMembers([compiled, build_model("bp", "8", FEATURES, CLASSES, seed=1)])
    shared = member("bp", 1, 1e-3, False)
    shared.compile(optimizer=compiled.optimizer)
    with pytest.raises(ValueError, match="share"):
        StackedMembers([compiled, shared])
