"""Every rule that trains conv nets lowers the loss on digits as 8×8×1 images and on mocked MNIST and
CIFAR-10 images (ff, dense only, on the flattened images); every other rule refuses a conv arch naming the ones that take it."""

import keras
import numpy as np
import pytest

from bpfree import build_model, datasets, rules

CONV_RULES = rules.convolutional_names()
# {conv rule: reason} left out of the mocked tfds images (slow tier); every conv rule learns digits.
NOT_ON_MOCKED_IMAGES = {}
MOCKED_IMAGE_RULES = tuple(r for r in CONV_RULES if r not in NOT_ON_MOCKED_IMAGES)


def adam_or_pepitas_sgd(rule):
    """Adam(3e-3); for pepita its paper's SGD with momentum 0.9 (Adam's normalised steps on its small
    activity differences make it wander)."""
    return keras.optimizers.SGD(0.01, momentum=0.9) if rule == "pepita" else keras.optimizers.Adam(3e-3)


def fit_losses(rule, arch, x, y, epochs, optimizer, batch_size=32, run_eagerly=False):
    model = build_model(rule, arch, x.shape[1:], y.shape[1], activation="tanh", seed=3)
    model.compile(optimizer=optimizer, jit_compile=False, run_eagerly=run_eagerly)
    before = float(model.evaluate(x, y, verbose=0, batch_size=256))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    return before, float(model.evaluate(x, y, verbose=0, batch_size=256))


@pytest.fixture(scope="module")
def digit_images():
    x, y = datasets.load("digits", "train")
    return x.reshape(-1, 8, 8, 1), keras.utils.to_categorical(y, 10)


@pytest.mark.parametrize("rule", CONV_RULES)
def test_conv_rules_lower_the_loss_on_digits_as_images(rule, digit_images):
    x, y = digit_images
    before, after = fit_losses(rule, "conv8k3-pool2-32", x, y, epochs=5, optimizer=adam_or_pepitas_sgd(rule))
    assert after < 0.85 * before, f"{rule}: loss {before:.3f} → {after:.3f}"


# Slow tier (./test.bash -m slow): ~40 s each of eager steps; the fast tier keeps every conv rule on digits
# as images, and test_conv_search trains conv trials on the same mocked sets.
@pytest.mark.slow
@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_conv_rules_lower_the_loss_on_mocked_tfds_images(name, shape, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=32):
        x, y = datasets.load(name, "train", data_dir=str(tmp_path), download=False)
    assert x.shape == (32, *shape)
    y = keras.utils.to_categorical(y, 10)
    for rule in MOCKED_IMAGE_RULES:
        # Random labels: memorising them. SGD: Adam's normalised steps make the hidden features of the
        # feedback-alignment rules drift faster, early on, than the output layer follows (the loss rises).
        # Eager: twenty steps on 32 images cost less than tracing them.
        before, after = fit_losses(rule, "conv6k5-pool2-32", x, y, epochs=10, batch_size=16, run_eagerly=True,
                                   optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        assert after < 0.97 * before, f"{rule} on mocked {name}: loss {before:.3f} → {after:.3f}"
    # ff trains dense nets only: on the flattened images. Its loss is the goodness loss of its layer.
    flat = x.reshape(len(x), -1)
    model = build_model("ff", "64", flat.shape[1], 10, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    losses = model.fit(flat, y, epochs=10, batch_size=16, shuffle=False, verbose=0).history["goodness_loss_1"]
    assert losses[-1] < 0.97 * losses[0], f"ff on mocked {name}: goodness loss {losses[0]:.3f} → {losses[-1]:.3f}"


@pytest.mark.parametrize("rule", [r for r in rules.names() if r not in CONV_RULES])
def test_rules_without_conv_refuse_a_conv_arch_naming_the_ones_with(rule):
    with pytest.raises(ValueError) as error:
        build_model(rule, "conv4k3-pool2-16", (8, 8, 1), 10)
    message = str(error.value)
    assert "conv4k3-pool2-16" in message and "\n" not in message
    if rules.rule_class(rule).model == "feedforward":  # the others' models take dense archs only
        assert all(r in message for r in CONV_RULES)
    else:
        assert "fully connected" in message


def test_every_conv_rule_is_on_the_mocked_images_or_excluded_with_a_reason():
    assert set(NOT_ON_MOCKED_IMAGES) <= set(CONV_RULES)
    assert all(isinstance(reason, str) and reason.strip() for reason in NOT_ON_MOCKED_IMAGES.values())
    assert set(MOCKED_IMAGE_RULES) | set(NOT_ON_MOCKED_IMAGES) == set(rules.convolutional_names())


def test_conv_models_predict_image_batches():
    model = build_model("fa", "conv4k3-avgpool2-conv4k3s2-8", (8, 8, 1), 3, seed=0)
    out = model.predict(np.zeros((5, 8, 8, 1), "float32"), verbose=0)
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
