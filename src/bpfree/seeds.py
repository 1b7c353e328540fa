"""The named seed streams: every seed a search, a model or a rule derives from one integer seed.

An execution's result follows from (search seed, trial id, execution) alone: its seed is
`execution(search_seed, k)`, and everything random in its run is drawn from a stream of that seed:

    stream                          seed                      what it seeds
    execution(s, k)                 s + k                     execution k of a search seeded s
    layer_weights(seed, l)          seed + l − 1              layer l's kernel initializer (Network, FF,
                                                              InvertibleNetwork)
    dropout(seed, l)                seed + l − 1              block l's dropout mask generator
    feedback(seed, l)               seed + 10000 + l − 1      layer l's fixed feedback matrix (FA, DFA, ...;
                                                              brSF draws its per-step R_l^t from (this, t))
    inverse(seed, l)                seed + 20000 + l          DTP's learned inverse g_l: its V_l and its noise
    pepita_input_feedback(seed)     seed + 30000              PEPITA's input feedback F
    ff_negative_labels(seed)        seed + 40000              Forward-Forward's negative-label generator
    gle_layer(seed, i)              seed + 2i                 GLE layer i's (0-based) kernel
    gle_bias(layer_seed)            layer_seed + 1            a GLE layer's bias
    data_order(seed, epoch)         (seed, epoch)             the stateless seed of epoch's training order
                                                              (`datasets.pipeline.epoch_permutation`)

Layers are numbered from 1 (the first hidden block) to L + 1 (the output layer). The per-layer streams
sit in blocks of `STRIDE` seeds, so the streams of one seed stay apart for networks of up to
`MAX_LAYERS` layers; `HEADROOM` is the largest offset any stream adds, so a seed below
`2**31 − HEADROOM` keeps every derived seed a valid int32 seed.

The formulas are frozen: they are what every recorded search was trained with, and changing one
changes every result drawn from it (tests/test_seeds.py pins them). Consequences of their additive form,
kept for that reason: `layer_weights` and `dropout` give the same integer, so a block's first dropout
mask thresholds the uniforms its initial kernel was scaled from; execution k + 1's layer l uses the
seed of execution k's layer l + 1 (its kernel's leading values are that layer's, rescaled); and block
1's dropout generator at training step t draws from the pair `data_order(seed, t)`.

Seeds that are not derived from an execution's seed: the validation carve-out (fixed,
`datasets.loading.VALIDATION_SEED`) and the ``examples_frac`` subsample (the search seed itself, so
every execution sees the same examples).

This module imports nothing heavy (no TensorFlow, no Keras), so the read side and the configuration
can use it.
"""

INT32_LIMIT = 2**31  # seeds are int32: every derived seed stays below this
STRIDE = 10_000  # the seeds of one per-layer stream: layer offsets stay below it
MAX_LAYERS = STRIDE - 1  # layers (hidden blocks and the output layer) whose per-layer streams stay apart


def execution(search_seed, k):
    """The seed of execution `k` (0-based) of every grid point of a search seeded `search_seed`.

    Consecutive executions take consecutive seeds, so growing ``executions_per_trial`` adds
    executions without changing the ones already run."""
    return search_seed + k


CONFIRMATION_OFFSET = 1_000_000  # confirmation seeds sit this far from a search's execution seeds


def confirmation(search_seed, k, count):
    """The seed of confirmation execution `k` (0-based, of `count`) of a search seeded `search_seed`: a chosen
    configuration re-run after the selection (`bpfree.tuning.confirmation`) with a seed no execution of the
    grid used — ``search_seed + CONFIRMATION_OFFSET + k``, below it when that would leave int32 room
    (grids of fewer than a million executions a point stay apart from them either way)."""
    base = search_seed + CONFIRMATION_OFFSET
    if base + count - 1 + HEADROOM >= INT32_LIMIT:
        base = search_seed - CONFIRMATION_OFFSET
    return base + k


def layer_weights(seed, l):
    """The seed of the kernel initializer of layer `l` (1-based; the output layer is L + 1) of a
    network seeded `seed`: dense and conv blocks, Forward-Forward's layers, invertible layers.

    Offset 0: the first layer's kernel is drawn from the network's seed itself."""
    return seed + l - 1


def dropout(seed, l):
    """The seed of block `l`'s dropout mask generator (1-based) of a network seeded `seed`.

    The same integer as `layer_weights(seed, l)` (kept: recorded searches were trained with it)."""
    return seed + l - 1


def feedback(seed, l):
    """The seed of layer `l`'s fixed feedback matrix (1-based) of a network seeded `seed`: FA's,
    sign-symmetry's random magnitudes, DFA's and DRTP's projections; brSF draws its per-step matrix
    from (this seed, step).

    Offset `STRIDE`: feedback matrices never reuse a weight seed of the same network, so B_l is not
    the forward kernel of another layer rescaled."""
    return seed + STRIDE + l - 1


def inverse(seed, l):
    """The seed of DTP's learned inverse g_l (l = 2 … L + 1 maps layer l's units back to layer
    l − 1's) of a network seeded `seed`: its initial V_l and its reconstruction-noise generator.

    Offset 2 · `STRIDE` (+ l, not l − 1: g_1 does not exist): apart from weights and feedback."""
    return seed + 2 * STRIDE + l


def pepita_input_feedback(seed):
    """The seed of PEPITA's fixed input feedback F of a network seeded `seed`.

    Offset 3 · `STRIDE`: one matrix per network, apart from every per-layer stream."""
    return seed + 3 * STRIDE


def ff_negative_labels(seed):
    """The seed of Forward-Forward's negative-label generator of a network seeded `seed`.

    Offset 4 · `STRIDE`: the labels drawn during training stay apart from every initializer's seed."""
    return seed + 4 * STRIDE


def gle_layer(seed, i):
    """The seed of GLE layer `i` (0-based, the output layer last) of a GLE network seeded `seed`.

    Stride 2: the layer's bias takes `gle_bias` of it, the next odd seed, so kernels and biases of
    one network never share a seed."""
    return seed + 2 * i


def gle_bias(layer_seed):
    """The seed of a GLE layer's bias initializer, from the layer's own seed (`gle_layer`); None (an
    unseeded layer) stays None."""
    return None if layer_seed is None else layer_seed + 1


def data_order(seed, epoch):
    """(seed, epoch): the stateless seed pair of epoch `epoch`'s training order of an execution
    seeded `seed`; `datasets.pipeline.epoch_permutation(n, seed, epoch)` draws its permutation from it.

    No offset: the order depends on the epoch alone, never on how often the data was iterated
    before, so a run resumed at epoch e sees the batches it would have seen. Works on Python ints
    and on tensors alike."""
    return seed, epoch


def _largest_offset():
    """The largest offset any stream adds to a seed, over networks of up to `MAX_LAYERS` layers."""
    deepest = MAX_LAYERS
    return max(layer_weights(0, deepest), dropout(0, deepest), feedback(0, deepest), inverse(0, deepest),
               pepita_input_feedback(0), ff_negative_labels(0), gle_bias(gle_layer(0, deepest - 1)))


HEADROOM = _largest_offset()
# Seeds drawn when none is given (`models.base.resolve_seed`): [0, DRAWN_RANGE), so that a drawn seed
# plus any stream's offset is still an int32 seed.
DRAWN_RANGE = INT32_LIMIT - HEADROOM
