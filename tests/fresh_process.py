"""A fresh Python process for the tests: its environment, killing one mid-run (kill -9 of its group), and
the learn, save and reload-elsewhere check that the dense rule families share."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np

import bpfree

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def fresh_env(**extra):
    """The environment of a fresh interpreter: this process's, with this checkout's src/ as PYTHONPATH and
    TensorFlow's C++ log lines off (TF_CPP_MIN_LOG_LEVEL=3), then `extra` (which may override either)."""
    return {**os.environ, "PYTHONPATH": SRC, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def kill_9_when(proc, ready, seconds=300, poll_seconds=0.05):
    """Polls `ready()` until it holds or `seconds` pass, then kills `proc`'s process group with SIGKILL (`proc`
    started with start_new_session=True) and reaps it. `proc` ending on its own first fails, with its output."""
    deadline = time.time() + seconds
    while time.time() < deadline and not ready():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(poll_seconds)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_learns_digits_and_reloads(rule, digits, tmp_path):
    """`rule` on a 32-unit network cuts the loss on `digits` (x, one-hot y) by a quarter in 5 epochs, and
    the saved model predicts the same in a fresh process."""
    x, y = digits
    model = bpfree.build_model(rule, "32", x.shape[1], 10, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < 0.75 * before, (before, after)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x[:16])
    expected = np.asarray(model.predict(x[:16], verbose=0))
    script = f"""
import json, numpy as np, keras
import bpfree
model = keras.models.load_model({str(tmp_path / 'm.keras')!r})
print("RESULT" + json.dumps(np.asarray(model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)).tolist()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=fresh_env())
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(json.loads(done.stdout.split("RESULT", 1)[1]), expected, rtol=1e-5, atol=1e-6)
