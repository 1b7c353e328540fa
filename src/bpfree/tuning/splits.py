"""A split held in memory for the whole search, and how index batches of it become model batches."""

import tensorflow as tf

from bpfree.datasets.pipeline import batch_maker


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
