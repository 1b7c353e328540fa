"""`SearchData`: a search's splits, loaded once and held in memory, and every execution's pipelines over them."""

from bpfree import datasets
from bpfree.tuning.splits import InMemorySplit


class SearchData:
    """The search's data: validation pipelines, and per execution a training pipeline whose order
    follows from the execution's seed and the epoch alone (`datasets.pipeline(..., epochs=...)`), so
    an execution's numbers never depend on what ran before it in the process.

    Each split is loaded once and held as tensors for the whole search (`in_memory`); every pipeline,
    one per execution included, gathers its batches from those tensors (`datasets.from_tensors`, the
    batches `datasets.pipeline` would give), so no execution copies a split.

    Each comes flat (for dense archs) or image-shaped (``flatten=False``, for conv archs: what
    `bpfree.tuning.inputs.flattens` says a trial's arch reads); a grid that mixes both gets both."""

    def __init__(self, config):
        self.config = config
        self.common = dict(batch_size=config.batch_size, problem_type=config.problem_type)
        self._validation, self._samples, self._arrays, self._in_memory = {}, {}, {}, {}
        self.steps_per_epoch = int(self.train(config.seed, 0).cardinality()) // config.num_epochs

    def validation(self, flatten=True):
        """The validation pipeline (built once per shape)."""
        if flatten not in self._validation:
            self._validation[flatten] = self._pipeline("validation", flatten)
        return self._validation[flatten]

    def sample(self, flatten=True, size=256):
        """A fixed batch of validation inputs (activation histograms), drawn once per shape."""
        if flatten not in self._samples:
            self._samples[flatten] = next(iter(self.validation(flatten)))[0][:size]
        return self._samples[flatten]

    def in_memory(self, kind, flatten=True):
        """The training split (``kind="train"``, as `train` loads it), the validation split or the test
        split as tensors kept for the whole search (`bpfree.tuning.splits.InMemorySplit`), loaded once."""
        c = self.config
        if kind not in self._arrays:
            options = dict(scaler=c.scaler, validation_frac=c.validation_frac, **c.data_options)
            if kind == "train":
                arrays = datasets.load(c.dataset, "train", examples_frac=c.examples_frac, seed=c.seed, **options)
            else:
                arrays = datasets.load(c.dataset, c.validation_split if kind == "validation" else "test", **options)
            self._arrays[kind] = InMemorySplit(*arrays, c.dataset_info(), c.problem_type, flatten)
            del arrays  # the tensors hold the split from here on
        if (kind, flatten) not in self._in_memory:
            self._in_memory[(kind, flatten)] = self._arrays[kind].view(flatten)
        return self._in_memory[(kind, flatten)]

    def test(self, flatten=True):
        """The test pipeline (built once per shape): every execution is evaluated on it once, at its end."""
        if ("test", flatten) not in self._validation:
            self._validation[("test", flatten)] = self._pipeline("test", flatten)
        return self._validation[("test", flatten)]

    def train(self, shuffle_seed, first_epoch, flatten=True):
        """Epochs first_epoch .. num_epochs−1 of an execution's training pipeline, over the in-memory split."""
        return self._pipeline("train", flatten, training=True, epochs=self.config.num_epochs,
                              first_epoch=first_epoch, seed=shuffle_seed)

    def _pipeline(self, kind, flatten, **kwargs):
        split = self.in_memory(kind, flatten)
        return datasets.from_tensors(split.x, split.y, split.meta, flatten=flatten, **self.common, **kwargs)
