"""Trained models out of a search (issue 23): ``--save_models`` keeps each execution's final model as
``execution_<k>.keras`` beside its record, for both engines; it loads in a fresh process after `import bpfree`
and evaluates to what its record says; `results.best_models` returns the best configuration's; without the
flag, or without `import bpfree`, the errors say what to do."""

import json
import os
import subprocess
import sys

import pytest

from bpfree import records, results
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from fresh_process import fresh_env

# Linear nets: lr 1e30 diverges (its model is kept too), the others complete.
SPACE = {"algorithm": ["bp", "fa"], "arch": ["16"], "activation": ["linear"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 1e-2, 1e30], "dropout": [0.0]}
CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=2)
ENGINES = {"members": EngineOptions(members=4, save_models=True), "fit": EngineOptions(fit=True, save_models=True)}


def quiet(*args):
    pass


def found(directory):
    return {(d["trial_id"], d["execution"]): (path, d) for path in records.iter_record_paths(str(directory))
            for d in [records.read(path)]}


def fresh_python(script, timeout=300):
    """Runs `script` in a new interpreter (nothing of this process's registrations); returns it done."""
    env = fresh_env()
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """{engine: experiment dir} of the same tiny search with --save_models, by the member programs (4 a
    program: the unload of a member's final state) and by fit."""
    out = {}
    for name, options in ENGINES.items():
        out[name] = str(tmp_path_factory.mktemp(name))
        run_search(out[name], SearchConfig(**CONFIG), SearchSpace.create(SPACE), log=quiet, engine=options)
    return out


def test_every_execution_keeps_its_final_model_and_it_loads_to_its_records_numbers(searched):
    """Every record (completed or diverged) names its model; each completed one, loaded in a fresh process
    after `import bpfree`, evaluates on the validation and test splits to the record's final val_* and its
    test metrics (1e-5); the best configuration's models come back through `results.best_models` there too."""
    expected = {}
    for name, directory in searched.items():
        runs = found(directory)
        assert len(runs) == 12 and {d["status"] for _, d in runs.values()} == {"completed", "diverged"}
        for (tid, execution), (path, data) in runs.items():
            assert data["engine"]["members" if name == "members" else "fit"] in (4, True), data["engine"]
            assert data["model_path"] == f"execution_{execution}.keras", (name, tid)
            assert os.path.getsize(os.path.join(os.path.dirname(path), data["model_path"])) > 0
            if data["status"] == "completed":
                expected[os.path.join(os.path.dirname(path), data["model_path"])] = {
                    "val_loss": data["history"]["val_loss"][-1], "val_error_rate": data["history"]["val_error_rate"][-1],
                    "test_loss": data["test"]["loss"], "test_error_rate": data["test"]["error_rate"]}
        assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp-")]  # atomic writes only
    assert len(expected) == 16
    script = f"""
import json
import keras
import bpfree
from bpfree.tuning import SearchConfig
from bpfree.tuning.search import SearchData
data = SearchData(SearchConfig(**{CONFIG!r}))
out = {{}}
for path in {sorted(expected)!r}:
    model = keras.models.load_model(path)
    val = model.evaluate(data.validation(), verbose=0, return_dict=True)
    test = model.evaluate(data.test(), verbose=0, return_dict=True)
    out[path] = {{"val_loss": val["loss"], "val_error_rate": val["error_rate"], "test_loss": test["loss"],
                 "test_error_rate": test["error_rate"]}}
best = {{name: [[m.count_params() for m in models] for models in bpfree.results.best_models(directory)]
        for name, directory in {searched!r}.items()}}
print("RESULT", json.dumps({{"evaluated": out, "best": best}}))
"""
    done = fresh_python(script)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))[len("RESULT "):])
    for path, numbers in expected.items():
        assert got["evaluated"][path] == pytest.approx(numbers, rel=1e-5, abs=1e-5), path
    for name in searched:
        assert len(got["best"][name]) == 1 and len(got["best"][name][0]) == 2  # one configuration, two seeds


@pytest.mark.parametrize("engine", list(ENGINES))
def test_best_models_are_the_best_configurations_as_results_ranks_them(searched, engine):
    directory = searched[engine]
    ranked = results.best(results.load(directory))
    paths = results.best_model_paths(directory, k=3)
    assert len(paths) == 3
    for row, chosen in zip(ranked.itertuples(), paths):
        # Its completed executions, in order (the diverged lr 1e30 trials never rank: no finite score).
        assert [os.path.basename(p) for p in chosen] == ["execution_0.keras", "execution_1.keras"]
        assert {os.path.basename(os.path.dirname(p)) for p in chosen} == {row.trial_id}
    (models,) = results.best_models(directory)
    assert len(models) == 2 and models[0].get_config()["seed"] != models[1].get_config()["seed"]  # two seeds
    assert {m.get_config()["algorithm"] for m in models} == {ranked["algorithm"].iloc[0]}
    assert [float(m.optimizer.learning_rate.numpy()) for m in models] == pytest.approx([ranked["lr"].iloc[0]] * 2)
    with pytest.raises(ValueError, match="Invalid k 0"):
        results.best_models(directory, k=0)


def test_without_the_flag_no_model_and_best_models_names_it_extension_rewrites_or_removes(tmp_path):
    """One execution: 1 epoch with --save_models, extended to 2 with it (the model rewritten at the new end),
    extended to 3 without it (the stale model removed, the record no longer names one, and `best_models`
    says which flag keeps them)."""
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    directory = str(tmp_path / "exp")

    def search(epochs, save):
        run_search(directory, SearchConfig(**{**CONFIG, "num_epochs": epochs, "executions_per_trial": 1}), space,
                   log=quiet, engine=EngineOptions(save_models=save))
        ((path, data),) = found(directory).values()
        return path[: -len(".json")] + ".keras", data

    model_file, data = search(1, True)
    assert data["model_path"] == "execution_0.keras" and os.path.exists(model_file)
    first = results.load_model(model_file).optimizer.iterations.numpy()
    model_file, data = search(2, True)
    assert data["extended_at_epochs"] == [1] and data["model_path"] == "execution_0.keras"
    assert results.load_model(model_file).optimizer.iterations.numpy() == 2 * first  # the state at epoch 2
    model_file, data = search(3, False)
    assert "model_path" not in data and not os.path.exists(model_file)
    with pytest.raises(ValueError, match=r"No saved model for trial bp-.* execution 0 .*: the search ran without "
                                         r"--save_models; run it with --save_models"):
        results.best_models(directory)


def test_keras_alone_names_bpfree_in_its_error_and_import_bpfree_or_bpfree_load_model_loads(searched):
    """Keras 3 imports the module a config names only for its own packages and has no plugin registry, so a
    process that never imported bpfree cannot find Network; its error prints the config, whose first key
    names bpfree's module (what the README tells the reader to import). `import bpfree` registers every
    class; `bpfree.load_model` registers them in any process (`python -m bpfree.results` skips that)."""
    path = next(os.path.join(os.path.dirname(p), d["model_path"]) for p, d in found(searched["members"]).values()
                if d["status"] == "completed")
    done = fresh_python(f"""
import keras
try:
    keras.models.load_model({path!r})
except TypeError as e:
    print("ERROR", str(e)[:400])
""")
    assert "ERROR Could not locate class 'Network'" in done.stdout, done.stderr[-3000:]
    assert "Full object config: {'module': 'bpfree.models.feedforward', 'class_name': 'Network'" in done.stdout
    done = fresh_python(f"import bpfree\nprint('LOADED', type(bpfree.load_model({path!r})).__name__)")
    assert "LOADED Network" in done.stdout, done.stderr[-3000:]
