"""`pipeline`: a tf.data input pipeline for `fit`, from any dataset name.

    numpy split (load: read, scale; cached on disk) → in-memory tensors → shuffle (training) → batch
    → augment (training; brightness, rotation, zoom, translation; each off by default)
    → flatten for dense networks → one-hot targets, or (x, x) for reconstruction → prefetch

The scaled split is held in memory once and batches are gathered by shuffled *indices*: shuffling
`from_tensor_slices` elements one by one (then `cache`) moves every example through the shuffle
buffer and measured 5× the training step's rate on MNIST, short of the 10× we want
(bench/pipeline.py). Each epoch draws one permutation in a single op (a fresh seed per iteration from
`Dataset.random`) and yields it as index batches, so no per-example tf.data element exists at all.
`from_tensors` builds the same pipeline over a split already in memory (a search holds each split once
and builds every execution's pipeline over it, instead of loading and copying the split each time).

With ``epochs=N`` a training pipeline holds epochs ``first_epoch .. N−1`` back to back, and epoch e's
order is drawn from (``shuffle_seed``, e) alone — not from how often the dataset was iterated before
— so a run resumed at epoch e sees exactly the batches it would have seen (fit it with
``steps_per_epoch=steps_per_epoch(...)``, ``epochs=N``, ``initial_epoch=first_epoch``).
"""

import dataclasses

from bpfree import arch, checks, seeds
from bpfree.datasets import catalog, preprocess
from bpfree.datasets.errors import DatasetError
from bpfree.datasets.loading import load, mean_std_stats



@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random image augmentation factors (Keras preprocessing layers); 0 switches one off.

    brightness: ± fraction of the value range; rotation: ± fraction of a full turn; zoom: ± fraction
    of the size; translation: ± fraction of height and width.
    """

    brightness: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0

    @property
    def enabled(self):
        return any(dataclasses.astuple(self))

    def layers(self, value_range, seed):
        import keras

        layers = []
        if self.brightness:
            layers.append(keras.layers.RandomBrightness(self.brightness, value_range=value_range, seed=seed))
        if self.rotation:
            layers.append(keras.layers.RandomRotation(self.rotation, fill_mode="constant", seed=seed))
        if self.zoom:
            layers.append(keras.layers.RandomZoom(self.zoom, fill_mode="constant", seed=seed))
        if self.translation:
            layers.append(keras.layers.RandomTranslation(self.translation, self.translation,
                                                         fill_mode="constant", seed=seed))
        return layers


def pipeline(name, split, *, batch_size, problem_type="classification", training=False, examples_frac=0.0,
             scaler="standard", seed=None, validation_frac=0.0, augment=None, flatten=True,
             image_size=catalog.DEFAULT_IMAGE_SIZE, data_dir=None, download=True, drop_remainder=False,
             epochs=None, first_epoch=0, shuffle_seed=None, input_size=0, resize="bilinear"):
    """A `tf.data.Dataset` of (x, one-hot y) batches, or (x, x) for reconstruction.

    ``training`` shuffles every epoch and applies ``augment`` (an `Augmentation` or a dict of its
    fields); ``flatten`` reshapes each example to a vector for the dense networks. ``seed`` draws the
    ``examples_frac`` subsample, and the shuffle unless ``shuffle_seed`` is given. ``epochs``: see the
    module docstring (one epoch per iteration, reshuffled on each, when None). ``input_size``, ``resize``:
    see `load`.
    """
    import tensorflow as tf

    arch.check_problem_type(problem_type, error=DatasetError)
    if int(batch_size) <= 0:
        raise checks.invalid("batch_size", batch_size, "must be a positive integer", error=DatasetError)
    augment = Augmentation(**augment) if isinstance(augment, dict) else (augment or Augmentation())
    meta = catalog.info(name, image_size=image_size, data_dir=data_dir, input_size=input_size, resize=resize)
    if augment.enabled and not meta.is_image:
        raise DatasetError(f"Augmentation needs images; dataset {name!r} has input shape {meta.input_shape}.")
    x, y = load(name, split, examples_frac=examples_frac, scaler=scaler, seed=seed,
                validation_frac=validation_frac, image_size=image_size, data_dir=data_dir, download=download,
                input_size=input_size, resize=resize)

    layers = []
    if training and augment.enabled:
        stats = mean_std_stats(name, image_size=image_size, data_dir=data_dir) if scaler == "mean_std" else None
        layers = augment.layers(preprocess.scaled_range(scaler, (0.0, 255.0), stats), seed)
    return from_tensors(tf.constant(x), tf.constant(y), meta, batch_size=batch_size, problem_type=problem_type,
                        training=training, flatten=flatten, layers=layers, drop_remainder=drop_remainder,
                        epochs=epochs, first_epoch=first_epoch, seed=seed if shuffle_seed is None else shuffle_seed)


def from_tensors(x_all, y_all, meta, *, batch_size, problem_type="classification", training=False, flatten=True,
                 layers=(), drop_remainder=False, epochs=None, first_epoch=0, seed=None):
    """`pipeline` over a split already in memory (tensors `x_all`, `y_all` of the dataset `meta`), shuffled
    from ``seed``; nothing is copied, so many pipelines can share one split."""
    import tensorflow as tf

    n = int(x_all.shape[0])
    make_batch = batch_maker(x_all, y_all, meta, problem_type, flatten, layers)
    if training and epochs is not None:
        ds = _epoch_index_batches(n, int(batch_size), seed, int(first_epoch), int(epochs), drop_remainder)
    elif training:
        ds = _shuffled_index_batches(n, int(batch_size), seed, drop_remainder)
    else:
        ds = tf.data.Dataset.range(n).batch(int(batch_size), drop_remainder=drop_remainder)
    return ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def batch_maker(x_all, y_all, meta, problem_type="classification", flatten=True, layers=()):
    """The function from a batch of example indices to the (x, target) batch `pipeline` yields: gather
    from the in-memory split, augment (`layers`), flatten for dense networks, one-hot targets or (x, x)
    for reconstruction. One fused map per batch (separate maps measured 1.6× slower in bench/pipeline.py);
    the search's member programs (`bpfree.tuning.engine`) call the same function inside their compiled epoch."""
    import tensorflow as tf

    def make_batch(indices):
        xb, yb = tf.gather(x_all, indices), tf.gather(y_all, indices)
        for layer in layers:
            xb = layer(xb, training=True)
        if flatten:
            xb = tf.reshape(xb, (-1, meta.features))
        if problem_type == "reconstruction":
            return xb, xb
        return xb, tf.one_hot(yb, meta.num_classes, dtype=tf.float32)

    return make_batch


def epoch_permutation(n, seed, epoch):
    """The order of epoch `epoch` of a training pipeline with ``shuffle_seed=seed`` (``epochs`` given):
    the permutation of range(n) drawn from the stateless seed `seeds.data_order(seed, epoch)` alone."""
    import tensorflow as tf

    seed_pair = tf.stack([tf.cast(part, tf.int64) for part in seeds.data_order(seed, epoch)])
    return tf.argsort(tf.random.stateless_uniform([n], seed=seed_pair))


def steps_per_epoch(num_examples, batch_size, drop_remainder=False):
    return num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)


def _permutation_batches(n, batch_size, seed_pair, drop_remainder):
    """Index batches of the permutation of range(n) drawn from the stateless seed `seed_pair`."""
    import tensorflow as tf

    full = n // batch_size * batch_size
    permutation = epoch_permutation(n, seed_pair[0], seed_pair[1])
    batches = tf.data.Dataset.from_tensor_slices(tf.reshape(permutation[:full], (-1, batch_size)))
    if full < n and not drop_remainder:
        batches = batches.concatenate(tf.data.Dataset.from_tensors(permutation[full:]))
    return batches


def _epoch_index_batches(n, batch_size, seed, first_epoch, epochs, drop_remainder):
    """Index batches of epochs first_epoch .. epochs−1, epoch e in the order drawn from (seed, e)."""
    import tensorflow as tf

    if seed is None:
        raise DatasetError("A training pipeline over explicit epochs needs an integer shuffle seed.")
    seed = tf.constant(int(seed), tf.int64)
    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(
        lambda e: _permutation_batches(n, batch_size, tf.stack([seed, e]), drop_remainder))
    # flat_map hides the length; fit needs it to know an epoch's end.
    total = (epochs - first_epoch) * steps_per_epoch(n, batch_size, drop_remainder)
    return ds.apply(tf.data.experimental.assert_cardinality(total))


def _shuffled_index_batches(n, batch_size, seed, drop_remainder):
    """Index batches of a new random permutation of range(n) every epoch (reproducible from `seed`)."""
    import tensorflow as tf

    def epoch(epoch_seed):
        return _permutation_batches(n, batch_size, tf.stack([epoch_seed, tf.constant(0, tf.int64)]), drop_remainder)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    batches = steps_per_epoch(n, batch_size, drop_remainder)
    # flat_map hides the length; fit needs it to know an epoch's end.
    return seeds.flat_map(epoch).apply(tf.data.experimental.assert_cardinality(batches))
