"""The named seed streams (`bpfree.seeds`): they stay apart, the configuration's headroom is theirs,
and the models draw from them exactly what recorded searches were trained with."""

import ast
import inspect

import numpy as np
import pytest

import bpfree
from bpfree import seeds
from bpfree.datasets.pipeline import epoch_permutation
from bpfree.models import base as models_base
from bpfree.models.gle import build_gle_network
from bpfree.tuning import config as config_lib
from bpfree.tuning.config import SearchConfig

SEED = 3


def network_streams(seed, layers):
    """{stream: its seeds} of one feedforward network with `layers` layers (hidden blocks and the output
    layer), every stream a rule of it may use."""
    return {
        "layer_weights": [seeds.layer_weights(seed, l) for l in range(1, layers + 1)],
        "feedback": [seeds.feedback(seed, l) for l in range(1, layers + 1)],
        "inverse": [seeds.inverse(seed, l) for l in range(2, layers + 1)],
        "pepita_input_feedback": [seeds.pepita_input_feedback(seed)],
        "ff_negative_labels": [seeds.ff_negative_labels(seed)],
    }


def test_the_module_imports_nothing():
    """No TensorFlow, no Keras: the configuration and the read side can name the streams for free."""
    tree = ast.parse(inspect.getsource(seeds))
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


# Layer counts: the arch grammar sets no limit; the presets and papers use a few layers (GLE's MNIST-1D
# network 7), so 1000 is far beyond any plausible network, and MAX_LAYERS is where the streams would meet.
@pytest.mark.parametrize("layers", [1, 2, 7, 100, 1000, seeds.MAX_LAYERS])
def test_the_streams_of_one_seed_never_collide(layers):
    streams = network_streams(SEED, layers)
    every = [s for values in streams.values() for s in values]
    assert len(set(every)) == len(every), "two streams (or two layers of one) share a seed"
    # Dropout deliberately reuses the weights' integers (frozen: recorded searches were trained with it).
    assert [seeds.dropout(SEED, l) for l in range(1, layers + 1)] == streams["layer_weights"]
    gle = [f(seeds.gle_layer(SEED, i)) for i in range(layers) for f in (lambda s: s, seeds.gle_bias)]
    assert len(set(gle)) == len(gle), "a GLE kernel and a GLE bias share a seed"
    top = max(every + gle) - SEED
    assert top <= seeds.HEADROOM


def test_max_layers_is_where_the_streams_would_meet():
    every = [s for values in network_streams(SEED, seeds.MAX_LAYERS + 1).values() for s in values]
    assert len(set(every)) < len(every)


def test_headroom_is_the_largest_offset_and_the_configuration_uses_it():
    offsets = [s - SEED for values in network_streams(SEED, seeds.MAX_LAYERS).values() for s in values]
    offsets += [seeds.gle_bias(seeds.gle_layer(SEED, seeds.MAX_LAYERS - 1)) - SEED]
    assert max(offsets) == seeds.HEADROOM
    assert config_lib.SEED_HEADROOM == seeds.HEADROOM
    # The largest search seed's last execution plus the largest offset is the largest int32 seed.
    for executions in (1, 3):
        top = SearchConfig.max_seed(executions)
        assert seeds.execution(top, executions - 1) + seeds.HEADROOM == 2**31 - 1
        SearchConfig(seed=top, executions_per_trial=executions)
    # A drawn seed leaves the same room.
    assert models_base._SEED_RANGE == seeds.DRAWN_RANGE
    assert seeds.DRAWN_RANGE - 1 + seeds.HEADROOM == 2**31 - 1


def test_the_formulas():
    """Every stream's value at one seed: a change here changes every recorded search's numbers."""
    assert seeds.execution(SEED, 2) == 5
    assert [seeds.layer_weights(SEED, l) for l in (1, 2, 3)] == [3, 4, 5]
    assert [seeds.dropout(SEED, l) for l in (1, 2, 3)] == [3, 4, 5]
    assert [seeds.feedback(SEED, l) for l in (1, 2, 3)] == [10_003, 10_004, 10_005]
    assert [seeds.inverse(SEED, l) for l in (2, 3)] == [20_005, 20_006]
    assert seeds.pepita_input_feedback(SEED) == 30_003
    assert seeds.ff_negative_labels(SEED) == 40_003
    assert [seeds.gle_layer(SEED, i) for i in (0, 1, 2)] == [3, 5, 7]
    assert seeds.gle_bias(seeds.gle_layer(SEED, 1)) == 6 and seeds.gle_bias(None) is None
    assert seeds.data_order(SEED, 4) == (3, 4)


# Golden values, computed before the streams had names (commit a0330a6): (variable path, sum, first entry).
GOLDEN = {
    "bp": (lambda: bpfree.build_model("bp", "5-4", 6, 3, seed=SEED), "block_1/dense/kernel",
           -0.9837746024131775, -0.44916650652885437),
    "bp output": (lambda: bpfree.build_model("bp", "5-4", 6, 3, seed=SEED), "output/kernel",
                  1.6068254709243774, -0.8112900853157043),
    "fa": (lambda: bpfree.build_model("fa", "5-4", 6, 3, seed=SEED), "block_2/dense/feedback",
           0.797623623162508, 0.11939692497253418),
    "dfa": (lambda: bpfree.build_model("dfa", "5-4", 6, 3, seed=SEED), "feedback_1/feedback",
            -0.4707131367176771, 0.15809524059295654),
    "dtp": (lambda: bpfree.build_model("dtp", "5-4", 6, 3, seed=SEED), "inverse_2/kernel",
            -1.2579493643715978, -0.30878084897994995),
    "pepita": (lambda: bpfree.build_model("pepita", "5-4", 6, 3, seed=SEED), "input_feedback/feedback",
               -0.028219545260071754, 0.04084605351090431),
    "ff": (lambda: bpfree.build_model("ff", "5-4", 6, 3, seed=SEED), "ff_1/kernel",
           -0.39916905760765076, -0.39814355969429016),
    "gait": (lambda: bpfree.build_model("gait", "6-6", 6, 3, activation="lrelu", seed=SEED), "invertible_1/kernel",
             2.0238365828990936, -0.16181182861328125),
    "gle kernel": (lambda: build_gle_network("5-4", 6, 3, seed=SEED), "gle_2/kernel",
                   0.8298406302928925, -0.3918903172016144),
    "gle bias": (lambda: build_gle_network("5-4", 6, 3, seed=SEED), "gle_2/bias",
                 -0.10689347982406616, -0.09586703777313232),
}


@pytest.mark.parametrize("case", list(GOLDEN))
def test_models_draw_the_weights_recorded_searches_were_trained_with(case):
    make, path, total, first = GOLDEN[case]
    model = make()
    (variable,) = [v for v in model.variables if v.path == path]
    values = np.asarray(variable.numpy(), "float64")
    np.testing.assert_allclose([values.sum(), values.flat[0]], [total, first], rtol=1e-6, atol=1e-7)


def test_generators_and_data_order_are_the_recorded_ones():
    ff = bpfree.build_model("ff", "5-4", 6, 3, seed=SEED)
    (state,) = [v for v in ff.variables if "seed_generator" in v.path]
    assert np.asarray(state.numpy()).tolist() == [40_003, 0]
    dropout = bpfree.build_model("bp", "5-4", 6, 3, dropout=0.3, seed=SEED)
    assert [block.dropout_seed for block in dropout.blocks] == [3, 4]
    assert np.asarray(epoch_permutation(12, SEED, 2)).tolist() == [9, 4, 7, 3, 11, 1, 2, 8, 5, 6, 0, 10]
