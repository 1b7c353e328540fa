import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

# The shared test helpers' asserts report their values as a test file's do.
pytest.register_assert_rewrite("fresh_process", "search_records", "numpy_reference")


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


TINY_PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
batch_size = 64
num_epochs = {epochs}
executions_per_trial = {executions}

[space]
algorithm = ["bp", "fa", "dfa"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3, 1e-2]
dropout = [0.0]
"""


@pytest.fixture
def tiny_preset(tmp_path):
    """write(epochs, executions=1) -> path of a 6-point digits grid preset (bp, fa, dfa × 2 lr)."""

    def write(epochs, executions=1):
        path = tmp_path / f"preset-{epochs}-{executions}.toml"
        path.write_text(TINY_PRESET.format(epochs=epochs, executions=executions))
        return path

    return write


@pytest.fixture
def cli_in_process(monkeypatch, capsys):
    """run(*args, **env) -> (returncode, stdout, stderr) of `python -m bpfree *args`, run in this process
    through the CLI's own `main` (absl flags parsed as `app.run` parses them): the same exit codes and
    lines without a new process and TensorFlow import each time. A few tests keep real subprocesses."""
    import types

    from absl import flags

    from bpfree.tuning import cli

    def run(*args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        flags.FLAGS.unparse_flags()
        try:
            rc = cli.main(flags.FLAGS(["bpfree", *map(str, args)]))
        finally:
            flags.FLAGS.unparse_flags()
        out, err = capsys.readouterr()
        return types.SimpleNamespace(returncode=rc, stdout=out, stderr=err)

    return run
