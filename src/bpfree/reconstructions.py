"""Sample reconstructions of a reconstruction network: a few validation inputs beside their reconstructions,
as a PNG (and a TensorBoard image) written when training ends."""

import os

import keras
import numpy as np
import tensorflow as tf

from bpfree import figures

FILENAME = "reconstructions.png"


def reconstruction_figure(x, x_hat, input_shape):
    """A matplotlib figure of inputs `x` and their reconstructions `x_hat` (arrays of n examples, any
    shape holding prod(`input_shape`) values each).

    Images (`input_shape` (H, W, C)): the inputs on the top row, their reconstructions below, both on the
    inputs' value range (a reconstruction outside it is clipped), grey for one channel. Vectors: one panel
    per example, the input and its reconstruction as two lines over the feature index.
    """
    plt = figures.pyplot()
    input_shape = tuple(int(d) for d in input_shape)
    x = np.asarray(x, dtype="float32").reshape((-1, *input_shape))
    x_hat = np.asarray(x_hat, dtype="float32").reshape((-1, *input_shape))
    n = len(x)
    if len(input_shape) == 3:
        low, high = float(np.nanmin(x)), float(np.nanmax(x))
        scale = (high - low) or 1.0
        fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
        for row, (images, label) in enumerate(((x, "input"), (x_hat, "reconstruction"))):
            for k in range(n):
                shown = np.clip((images[k] - low) / scale, 0.0, 1.0)
                ax = axes[row, k]
                if input_shape[2] == 1:
                    ax.imshow(shown[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
                else:
                    ax.imshow(shown[..., :3])
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row, 0].set_ylabel(label)
    else:
        columns = min(n, 4)
        rows = -(-n // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.2 * rows), squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= n:
                ax.axis("off")
                continue
            ax.plot(x[k].reshape(-1), label="input")
            ax.plot(x_hat[k].reshape(-1), label="reconstruction")
            ax.set_xlabel("feature")
        axes[0, 0].legend(fontsize=7)
    fig.suptitle("validation inputs and their reconstructions")
    fig.tight_layout()
    return fig


class ReconstructionFigure(keras.callbacks.Callback):
    """At the end of training, writes `reconstruction_figure` of `x_sample` (its first `count` examples, as
    the model reads them) and the model's outputs on them to ``<log_dir>/reconstructions.png``, and the same
    picture as the image ``reconstructions`` in the TensorBoard run at `log_dir` (its Images dashboard), at
    the step of the number of epochs trained.

    `input_shape` is the dataset's (an image shape (H, W, C), or a number of features), by which the
    model's flat inputs and outputs are drawn.
    """

    def __init__(self, log_dir, x_sample, input_shape, count=8):
        super().__init__()
        self.log_dir = log_dir
        self.x_sample = x_sample[:count]
        self.input_shape = tuple(input_shape) if np.ndim(input_shape) else (int(input_shape),)
        self.count = int(count)
        self.path = os.path.join(log_dir, FILENAME)
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1

    def on_train_end(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        x_hat = keras.ops.convert_to_numpy(self.model(self.x_sample, training=False))
        fig = reconstruction_figure(keras.ops.convert_to_numpy(self.x_sample), x_hat, self.input_shape)
        try:
            figures.save(fig, self.path)
        finally:
            figures.pyplot().close(fig)
        with open(self.path, "rb") as f:
            image = tf.image.decode_png(f.read(), channels=4)
        with tf.summary.create_file_writer(self.log_dir).as_default():
            tf.summary.image("reconstructions", image[None], step=self.epochs)
