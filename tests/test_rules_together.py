"""Rules of several families side by side: saved pepita and ff models loading in a fresh process, and tiny
grids of rules next to bp (kp, usf, brsf, frsf, sdfa; pepita, ff)."""

import json
import os
import subprocess
import sys

import numpy as np

import bpfree
from bpfree import records
from bpfree.tuning import SearchConfig, SearchSpace, run_search

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from feedback_variants_reference import NEW
from fresh_process import SRC, fresh_env
from pepita_ff_reference import ff_model, pepita_batch, pepita_model


def test_saved_models_load_in_a_fresh_process(tmp_path):
    x, y = pepita_batch()
    expected = {}
    for name, model in (("pepita", pepita_model(f_scale=0.3)), ("ff", ff_model())):
        model.compile(optimizer="adam", metrics=["error_rate"])
        model.train_on_batch(x, y)
        model.save(tmp_path / f"{name}.keras")
        expected[name] = {"pred": np.asarray(model.predict(x, verbose=0)).tolist(),
                          "weights": [np.asarray(w).tolist() for w in model.weights],
                          "rule": model.rule.get_config()}
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json
import numpy as np
import keras
import bpfree
x = np.load({str(tmp_path / 'x.npy')!r})
out = {{}}
for name in ("pepita", "ff"):
    m = keras.models.load_model({str(tmp_path)!r} + f"/{{name}}.keras")
    out[name] = {{"pred": np.asarray(m.predict(x, verbose=0)).tolist(),
                  "weights": [np.asarray(w).tolist() for w in m.weights], "rule": m.rule.get_config(),
                  "class": type(m).__name__}}
print("RESULT" + json.dumps(out))
"""
    env = fresh_env(PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.split("RESULT", 1)[1])
    assert loaded["pepita"]["class"] == "Network" and loaded["ff"]["class"] == "FFNetwork"
    for name in ("pepita", "ff"):
        assert loaded[name]["rule"] == expected[name]["rule"]
        np.testing.assert_allclose(loaded[name]["pred"], expected[name]["pred"], rtol=1e-5, atol=1e-6)
        assert len(loaded[name]["weights"]) == len(expected[name]["weights"])
        for got, want in zip(loaded[name]["weights"], expected[name]["weights"]):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # F included


def test_a_tiny_grid_next_to_bp(tmp_path):
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1, use_xla=False)
    space = SearchSpace.create({"algorithm": ["bp", "pepita", "ff"], "arch": ["16"], "activation": ["relu"],
                                "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]})
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None)
    done = [records.read(p) for p in records.iter_record_paths(summary["project_dir"])]
    assert sorted(d["hparams"]["algorithm"] for d in done) == ["bp", "ff", "pepita"]
    assert all(d["status"] == "completed" and len(d["history"]["loss"]) == 1 for d in done)


def test_tiny_grid_next_to_bp(tmp_path):
    space = {"algorithm": ["bp", *NEW], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1, use_xla=False)
    summary = run_search(str(tmp_path), config, SearchSpace.create(space), log=lambda *a: None)
    table = bpfree.results.load(str(tmp_path))
    assert set(table["algorithm"]) == {"bp", *NEW}, summary
    assert (table["status"] == "completed").all(), table[["algorithm", "status"]]
