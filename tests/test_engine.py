"""The member program (`bpfree.tuning.engine`), every rule the registry has: a member's numbers equal those
of the same execution trained alone — in a program of the fewest members, the rest inactive — epoch by
epoch, bit for bit, under XLA (dense and conv nets, with and without dropout); and within float32
rounding of the model's own compiled `train_step` on the same batches. Rules the engine does not serve
say why (`engine.unvectorizable`), and where an op has no vectorized form the program says which."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import build_model
from bpfree.datasets.pipeline import epoch_permutation
from bpfree.rules import registry
from bpfree.tuning import engine
from bpfree.tuning.options import MIN_MEMBERS, EngineOptions
from bpfree.tuning.splits import InMemorySplit

CLASSES, N, BATCH = 3, 40, 16  # 3 batches an epoch, the last one short
LRS, SEEDS = (0.05, 0.01, 0.1), (1, 2, 3)
INVERTIBLE = {r for r in registry.names() if registry.rule_class(r).model == "invertible"}
# Rules whose models keep their own train step: trained through fit, said in the log (`unvectorizable`).
OWN_STEP = {r for r in registry.names() if registry.rule_class(r).model in ("gle", "ff")}
SERVED = tuple(r for r in registry.names() if r not in OWN_STEP)
CONV = tuple(registry.convolutional_names())
# Rules whose dense step draws random numbers (stateless random ops have no vectorized form): their
# members are computed one after another, said in `program.fallback`.
LOOPED = {"dtp": "the noise of its difference reconstruction loss", "tp_lsq": "the noise of its inverses' loss"}


def seeds_of(rule):
    """The members' model seeds: one for all where the rule's step reads its seed (`Rule.seed_in_step`)."""
    return (SEEDS[0],) * 3 if registry.rule_class(rule).seed_in_step else SEEDS


def model_of(rule, seed, lr, conv=False, dropout=0.0, optimizer="adam", activation="tanh"):
    if rule in INVERTIBLE:
        model = build_model(rule, "6-6", 6, CLASSES, activation="lrelu", seed=seed)
    elif conv:
        model = build_model(rule, "conv3k3-pool2-5", (6, 6, 1), CLASSES, activation="tanh", seed=seed, dropout=dropout)
    else:
        model = build_model(rule, "8-6", 6, CLASSES, activation=activation, seed=seed, dropout=dropout)
    opt = keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr, momentum=0.9)
    model.compile(optimizer=opt, metrics=["error_rate"])
    return model


def split_of(rule, conv=False):
    rng = np.random.default_rng(0)
    shape = (6, 6, 1) if conv else (6,)
    x = rng.normal(size=(N, *shape)).astype("float32")
    y = (np.arange(N) % CLASSES).astype("int64")
    meta = types.SimpleNamespace(features=int(np.prod(shape)), num_classes=CLASSES)
    return InMemorySplit(x, y, meta, "classification", flatten=not conv)


def train(models, split, capacity, epochs=2, jit=True, seeds=SEEDS):
    """Trains `models` (one structure; model k's data order from seeds[k]) as the members of one program
    of `capacity`; returns per member the variables after training, its last epoch's training logs and
    its validation logs, and the program."""
    program = engine.MemberProgram(models[0], capacity, split, BATCH, jit_compile=jit)
    for k, model in enumerate(models):
        engine.prepare(model, split)
        program.load(k, model)
    pad = capacity - len(models)
    seeds = list(seeds[:len(models)]) + [0] * pad
    active = [True] * len(models) + [False] * pad
    for epoch in range(epochs):
        program.train_epoch(seeds, epoch, active)
    logs = [program.train_logs(k, m) for k, m in enumerate(models)]
    val = program.evaluate(active, split, models + [None] * pad)
    for k, model in enumerate(models):
        program.unload(k, model)
    return [[v.numpy() for v in engine.ModelState(m).all] for m in models], logs, val, program


def assert_reads_only_its_members(program):
    """The traced steps read no variable of the template model: every read goes through a member's
    state (a variable read directly would be the template's, the same for every member, and frozen)."""
    template = {id(v.value.handle): v.path for v in engine.ModelState(program.template).all}

    def captured(graph):
        found = [template[id(outer)] for outer, _ in graph.captures if id(outer) in template]
        for function in getattr(graph, "_functions", {}).values():
            if hasattr(function, "graph"):
                found += captured(function.graph)
        return found

    for traced in (program._epoch, program._evaluate):
        assert not captured(traced.get_concrete_function().graph)


def assert_bitwise(ours, theirs):
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("rule", SERVED)
def test_a_member_equals_the_same_execution_alone_bit_for_bit(rule):
    """Three members (the middle one compared: it has neighbours on both sides) against that execution
    alone; every op of the dense step vectorized (tf.vectorized_map with fallback_to_while_loop=False
    raises on an op it would loop over)."""
    split = split_of(rule)
    model_seeds = seeds_of(rule)
    together = train([model_of(rule, s, lr) for s, lr in zip(model_seeds, LRS)], split, capacity=3)
    assert together[3].vectorized == (rule not in LOOPED), together[3].fallback
    assert_reads_only_its_members(together[3])
    alone = train([model_of(rule, model_seeds[1], LRS[1])], split, capacity=MIN_MEMBERS, seeds=[SEEDS[1]])
    assert_bitwise(together[0][1], alone[0][0])
    assert together[1][1] == alone[1][0] and together[2][1] == alone[2][0], rule


@pytest.mark.parametrize("rule", [r if r in ("bp", "dfa") else pytest.param(r, marks=pytest.mark.slow) for r in CONV])
def test_a_conv_member_with_dropout_equals_the_same_execution_alone(rule):
    """Per-member filters and dropout masks have no vectorized form: the program says so and computes
    its members one after another, each still its own execution's numbers."""
    split = split_of(rule, conv=True)
    dropout = 0.0 if rule == "pepita" else 0.2  # pepita's two forward passes must see one network
    model_seeds = seeds_of(rule)
    models = [model_of(rule, s, lr, conv=True, dropout=dropout) for s, lr in zip(model_seeds, LRS)]
    together = train(models, split, capacity=3)
    assert not together[3].vectorized and together[3].fallback
    assert_reads_only_its_members(together[3])
    alone = train([model_of(rule, model_seeds[1], LRS[1], conv=True, dropout=dropout)], split, capacity=MIN_MEMBERS,
                  seeds=[SEEDS[1]])
    assert_bitwise(together[0][1], alone[0][0])
    assert together[1][1] == alone[1][0] and together[2][1] == alone[2][0], rule


@pytest.mark.parametrize("rule", ["bp", "dfa", pytest.param("fa", marks=pytest.mark.slow),
                                  pytest.param("drtp", marks=pytest.mark.slow)])
def test_a_member_follows_its_models_own_train_step_within_rounding(rule):
    """Member k against model k's compiled train_step (XLA) on the same batches: the same equations."""
    split = split_of(rule)
    models = [model_of(rule, s, lr, optimizer="sgd") for s, lr in zip(SEEDS, LRS)]
    together = train(models, split, capacity=3)
    for k, (s, lr) in enumerate(zip(SEEDS, LRS)):
        model = model_of(rule, s, lr, optimizer="sgd")
        step = tf.function(model.train_step, jit_compile=True, autograph=False)
        for epoch in range(2):
            order = epoch_permutation(N, SEEDS[k], epoch)
            for i in range(0, N, BATCH):
                step(split.make_batch(order[i:i + BATCH]))
        state = engine.ModelState(model)
        kept = len(state.all) - len(state.metrics)  # metrics: the member's are the last epoch's alone
        for a, b in zip(together[0][k][:kept], [v.numpy() for v in state.all[:kept]]):
            if a.dtype.kind == "f":
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_diverging_member_is_frozen_and_the_others_are_untouched():
    split = split_of("bp")
    lrs = (0.01, 1e30, 0.05)
    models = [model_of("bp", s, lr, optimizer="sgd", activation="linear") for s, lr in zip(SEEDS, lrs)]
    program = engine.MemberProgram(models[0], 3, split, BATCH, jit_compile=True)
    for k, model in enumerate(models):
        engine.prepare(model, split)
        program.load(k, model)
    active = program.train_epoch(list(SEEDS), 0, [True] * 3)
    active = program.train_epoch(list(SEEDS), 1, active)
    assert active == [True, False, True]
    calm = [model_of("bp", s, lr, optimizer="sgd", activation="linear") for s, lr in zip(SEEDS, lrs)]
    alone = train([calm[0], calm[2]], split, capacity=3, seeds=[SEEDS[0], SEEDS[2]])  # without the one that diverged
    for k, model in zip((0, 2), (0, 1)):
        program.unload(k, models[k])
        assert_bitwise([v.numpy() for v in engine.ModelState(models[k]).all], alone[0][model])


def test_rules_with_their_own_train_step_are_not_served_and_say_why():
    for rule in sorted(OWN_STEP):
        kwargs = {"steps": 3} if registry.rule_class(rule).model == "gle" else {}
        model = build_model(rule, "5", 6, CLASSES, seed=1, **kwargs)
        model.compile(optimizer="adam")
        assert "has its own train step" in engine.unvectorizable(model), rule
    model = build_model("bp", "5", 6, CLASSES, seed=1, trackers=("bp_cosine",))
    model.compile(optimizer="adam")
    assert "tracker" in engine.unvectorizable(model)


@pytest.mark.parametrize("bad,valid", [(dict(members=-1), "0: automatic"), (dict(members=1.5), "0: automatic"),
                                       (dict(checkpoint_seconds=-1), "0: every epoch")])
def test_engine_options_refuse_bad_values_in_one_line(bad, valid):
    with pytest.raises(ValueError, match=valid) as raised:
        EngineOptions(**bad)
    assert "\n" not in str(raised.value)
