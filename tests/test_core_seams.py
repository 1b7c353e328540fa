"""The seams of the core: every model loads in a fresh process, rules are configured objects with their
own namespaced hparams, no import cycles, keras-tuner's public API only."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree import rules
from bpfree.optimizers import UncorrectedAdam
from bpfree.tuning.space import SearchSpace, SpaceError
from fresh_process import SRC, fresh_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVERTIBLE = ("gait", "tp", "bp_inv")


def small_model(algorithm, seed=3):
    if algorithm in INVERTIBLE:
        return bpfree.build_model(algorithm, "6-6", 6, 3, activation="lrelu", seed=seed)
    if algorithm in ("gle", "le"):
        return bpfree.build_model(algorithm, "5", 6, 3, seed=seed, steps=3)
    return bpfree.build_model(algorithm, "5-4", 6, 3, seed=seed)


def subprocess_env():
    return fresh_env(PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ----------------------------------------------------------------------------- defect 1: models that load
def test_every_registered_rules_model_loads_and_predicts_in_a_fresh_process(tmp_path):
    """Each rule's model is saved here (compiled with UncorrectedAdam, the optimizer that was not
    registered) and loaded in a new process that imports only bpfree: same predictions."""
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    expected = {}
    for algorithm in rules.names():
        model = small_model(algorithm)
        model.compile(optimizer=UncorrectedAdam(1e-3), metrics=["error_rate"])
        model.save(tmp_path / f"{algorithm}.keras")
        expected[algorithm] = np.asarray(model.predict(x, verbose=0)).tolist()
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json, sys
import numpy as np
import keras
import bpfree
x = np.load({str(tmp_path / 'x.npy')!r})
out = {{}}
for name in {list(rules.names())!r}:
    model = keras.models.load_model({str(tmp_path)!r} + f"/{{name}}.keras")
    out[name] = [type(model).__name__, type(model.optimizer).__name__, np.asarray(model.predict(x, verbose=0)).tolist()]
print("RESULT" + json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.split("RESULT", 1)[1])
    assert set(loaded) == set(rules.names())
    for algorithm, (_model_class, optimizer, predictions) in loaded.items():
        assert optimizer == "UncorrectedAdam", algorithm
        np.testing.assert_allclose(predictions, expected[algorithm], rtol=1e-5, atol=1e-6, err_msg=algorithm)
    assert {loaded[a][0] for a in INVERTIBLE} == {"InvertibleNetwork"}


def test_import_bpfree_registers_every_saveable_class():
    for name in ("bpfree>Network", "bpfree>InvertibleNetwork", "bpfree>GLENetwork", "bpfree>InvertibleDense",
                 "bpfree>UncorrectedAdam", "bpfree>TorchAdam", "bpfree>ErrorRate", "bpfree>DenseBlock",
                 "bpfree>FeedbackAlignmentDense", "bpfree>FeedbackProjection", "bpfree>LearnedInverse",
                 "bpfree>GLEDense"):
        assert keras.saving.get_registered_object(name) is not None, name


# ----------------------------------------------------------------------------- rules as configured objects
def test_rules_are_configured_objects_saved_with_the_model(tmp_path):
    rule = rules.get("dtp", alpha_t=0.05)
    assert rule.alpha_t == 0.05 and rule.get_config() == {"alpha_t": 0.05, "inverse_noise": 0.1}
    assert rules.rule_class("tp_rinv").hparams() == {"alpha_t": 0.1, "gamma": 1e-3, "num_steps_rinv": 2,
                                                     "lr_rinv": 0.1}
    model = bpfree.build_model(rule, "5-4", 6, 3, seed=1)
    assert model.rule is rule and model.get_config()["rule"] == rule.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.rule.get_config() == {"alpha_t": 0.05, "inverse_noise": 0.1}
    keyword = bpfree.build_model("dtp", "5-4", 6, 3, seed=1, alpha_t=0.05)
    assert keyword.rule.get_config() == rule.get_config()
    with pytest.raises(ValueError, match="Invalid alpha_t -1.0 for dtp: a number ≥ 0"):
        rules.get("dtp", alpha_t=-1.0)
    with pytest.raises(ValueError, match="'gamma' is not an hparam of 'dtp'; its own hparams: alpha_t, inverse_noise"):
        bpfree.build_model("dtp", "5-4", 6, 3, gamma=0.1)


def test_a_seed_left_out_is_drawn_and_recorded():
    for algorithm in ("dfa", "gait", "gle"):
        a, b = small_model(algorithm, seed=None), small_model(algorithm, seed=None)
        config = a.get_config()
        seed = config["seed"] if "seed" in config else config["gle_layers"][0]["config"]["seed"]
        assert isinstance(seed, int)
        rebuilt = type(a).from_config(config)
        for v, w in zip(a.weights, rebuilt.weights):
            np.testing.assert_array_equal(np.asarray(v), np.asarray(w))
        assert any(not np.array_equal(np.asarray(v), np.asarray(w)) for v, w in zip(a.weights, b.weights))


def test_alignment_targets_come_from_the_rule():
    for algorithm, layers in (("bp", []), ("fa", [2, 3]), ("dfa", [2, 3]), ("dtp", [])):
        model = bpfree.build_model(algorithm, "5-4", 6, 3, seed=0, trackers=("weight_alignment",))
        assert sorted(model.rule.alignment_targets(model)) == layers
        assert [m.name for m in model.tracker_metrics] == [f"weight_alignment_{l}" for l in layers]


# ----------------------------------------------------------------------------- defect 2: namespaced rule hparams
SPACE = {"algorithm": ["gle", "tp_rinv", "gait"], "arch": ["6"], "activation": ["lrelu"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0]}


def gammas(points):
    return {(p["algorithm"], p["gamma"]) for p in points}


def test_a_bare_hparam_that_rules_share_is_refused_naming_them():
    with pytest.raises(SpaceError, match=r"'gamma' belongs to several rules \(gait, tp_rinv, gle, le\)"):
        SearchSpace.create(SPACE, {"gamma": "0.01"})
    with pytest.raises(SpaceError, match=r"'gamma' belongs to several rules \(gait, tp_rinv, gle, le\)"):
        SearchSpace.create({**SPACE, "gamma": [0.01]})


def test_a_namespaced_rule_hparam_sets_that_rule_only():
    points = SearchSpace.create(SPACE, {"tp_rinv.gamma": "0.01"}).grid()
    assert gammas(points) == {("gle", 0.0), ("tp_rinv", 0.01), ("gait", 1e-3)}
    table = SearchSpace.create({**SPACE, "tp_rinv": {"gamma": [0.01, 0.1]}, "gle": {"gamma": [0.2]}}).grid()
    assert gammas(table) == {("gle", 0.2), ("tp_rinv", 0.01), ("tp_rinv", 0.1), ("gait", 1e-3)}
    unique = SearchSpace.create({**SPACE, "algorithm": ["dtp"], "activation": ["tanh"]}, {"inverse_noise": "0.5"})
    assert {p["inverse_noise"] for p in unique.grid()} == {0.5}  # a name only dtp has may stay bare


def test_namespaced_rule_hparams_from_a_toml_preset_and_the_cli(tmp_path, cli_in_process):
    from bpfree.tuning.presets import load_preset

    preset = tmp_path / "p.toml"
    preset.write_text('[space]\nalgorithm = ["gle", "tp_rinv"]\narch = ["6"]\nactivation = ["tanh"]\n'
                      'batchnorm = [false]\nbw_init = ["ortho"]\nlr = [1e-3]\ndropout = [0.0]\n'
                      '[space.tp_rinv]\ngamma = [0.01, 0.1]\n')
    _, space = load_preset(preset)
    assert gammas(SearchSpace.create(space).grid()) == {("gle", 0.0), ("tp_rinv", 0.01), ("tp_rinv", 0.1)}
    done = cli_in_process(tmp_path / "exp", "--hparams", preset, "--dataset", "xor", "--rule_hparam", "gamma=0.5")
    assert done.returncode == 2 and "belongs to several rules (gait, tp_rinv, gle, le)" in done.stderr
    done = cli_in_process(tmp_path / "exp", "--hparams", preset, "--dataset", "xor", "--rule_hparam",
                          "tp_rinv.gamma=-1")
    assert done.returncode == 2 and "Invalid gamma -1.0 for tp_rinv: a number > 0" in done.stderr, done.stderr


# ----------------------------------------------------------------------------- imports
def test_every_module_imports_first_without_a_cycle():
    """Each bpfree module imported on its own, first, in one fresh process (TensorFlow stays loaded)."""
    script = """
import importlib, pkgutil, sys, traceback
import bpfree
names = sorted(m.name for m in pkgutil.walk_packages(bpfree.__path__, "bpfree."))
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "bpfree" or m.startswith("bpfree.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().splitlines()[-1])
print("FAILED" + repr(failed) + " COUNT" + str(len(names)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FAILED[]" in done.stdout, done.stdout[-3000:]


def bpfree_imports():
    """{module: the bpfree modules it imports}, read from the source: every import statement, those inside
    functions included (an import moved into a function still runs, and still closes a cycle). `from a
    import b` names module a.b where there is one, else a; a submodule's implicit import of its parent
    package is not an edge (every package's __init__ imports its submodules)."""
    import ast
    import pathlib

    src = pathlib.Path(REPO, "src")
    modules = {}
    for path in (src / "bpfree").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)

    def known(name):  # the module that `name` (maybe an attribute of it) lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, (path, package) in modules.items():
        here = name if package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets.update(known(f"{base}.{a.name}") for a in node.names)
        graph[name] = {t for t in targets if t and t != name}
    return graph


def import_cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm): each a cycle."""
    index, low, stack, cycles = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_even_through_imports_inside_functions():
    """The import graph of the source, function-level imports included, has no cycle: a lazy import that
    only dodges a cycle (results <-> report once) is still one."""
    graph = bpfree_imports()
    assert "bpfree.io" in graph["bpfree.records"]  # the graph sees what it should
    assert import_cycles(graph) == []
    hidden = {**graph, "bpfree.io": graph["bpfree.io"] | {"bpfree.records"}}  # as if io imported records
    assert import_cycles(hidden) == [["bpfree.io", "bpfree.records"]]  # the check can fail


def test_rules_import_no_model_and_nothing_imports_keras_tuner_private_modules():
    import ast
    import pathlib

    src = pathlib.Path(REPO, "src", "bpfree")
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        if path.parent.name == "rules":
            assert not [m for m in modules if m.startswith(("bpfree.models", "bpfree.tuning"))], path
        assert not [m for m in modules if m.startswith("keras_tuner.src")], path
