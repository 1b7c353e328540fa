import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def toy_classification():
    """A small learnable problem: 3 classes from a random linear teacher on 12 features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype("float32")
    teacher = rng.normal(size=(12, 3))
    y = keras.utils.to_categorical(np.argmax(x @ teacher, axis=1), 3).astype("float32")
    return x, y


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Dataset caches of the test session go to a temporary folder, not ~/.cache/bpfree."""
    os.environ["BPFREE_CACHE_DIR"] = str(tmp_path_factory.mktemp("bpfree-cache"))
    yield
