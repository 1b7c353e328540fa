"""Distributed search on loopback: a coordinator and workers (keras-tuner chief/worker mode)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import keras_tuner
import pytest

from bpfree import records
from bpfree.tuning import GridOracle, distributed
from bpfree.tuning.distributed import free_port, serve

POINTS = 6


def launch(exp, preset, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "bpfree", str(exp), "--hparams", str(preset), *extra],
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def found(exp):
    out = {}
    for path in records.iter_record_paths(str(exp)):
        data = records.read(path)
        out[data["trial_id"]] = data
    return out


def wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.3)
    raise AssertionError("timed out")


def assert_complete(exp, epochs):
    done = found(exp)
    assert len(done) == POINTS, sorted(done)
    for data in done.values():
        assert data["status"] == "completed" and len(data["history"]["loss"]) == epochs
    assert len(list(exp.rglob("execution_*.json"))) == POINTS  # each point exactly once


@pytest.fixture
def preset(tiny_preset):
    return tiny_preset


@pytest.fixture(autouse=True)
def _kill_leftovers():
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def test_coordinator_and_two_workers_complete_the_grid(tmp_path, preset, _kill_leftovers):
    exp = tmp_path / "exp"
    proc = launch(exp, preset(1), "--workers", "2")
    _kill_leftovers.append(proc)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert_complete(exp, 1)
    assert {d["worker"] for d in found(exp).values()} <= {"worker0", "worker1"}
    state = json.loads((exp / "distributed.json").read_text())
    assert state["host"] == "127.0.0.1" and set(state["workers"]) == {"worker0", "worker1"}
    from bpfree import results

    assert len(results.load(str(exp))) == POINTS


@pytest.mark.slow
def test_the_coordinator_listens_on_the_address_it_is_given(tmp_path, preset, _kill_leftovers):
    """--oracle_bind 127.0.0.2 (loopback, another address than the default's): the worker reaches it there."""
    one_point = tmp_path / "one.toml"
    one_point.write_text(preset(1).read_text().replace('["bp", "fa", "dfa"]', '["bp"]').replace("[1e-3, 1e-2]", "[1e-3]"))
    exp = tmp_path / "exp"
    proc = launch(exp, one_point, "--workers", "1", "--oracle_bind", "127.0.0.2")
    _kill_leftovers.append(proc)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert [d["status"] for d in found(exp).values()] == ["completed"]
    assert json.loads((exp / "distributed.json").read_text())["host"] == "127.0.0.2"
    assert "warning:" not in out  # loopback
    assert out.count("search done") == 1 and "worker0 done: 1 grid points run" in out  # one summary of the search


def test_supervise_starts_the_coordinator_on_its_address_and_the_workers_reach_it(tmp_path, monkeypatch):
    """Every interface (0.0.0.0): the coordinator listens there, the workers on this host reach it on loopback."""
    started = {}

    class Done:  # a process that has already finished its part
        pid = 1

        def __init__(self, command, **kwargs):
            started[kwargs["env"]["KERASTUNER_TUNER_ID"]] = kwargs["env"]

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(distributed.subprocess, "Popen", Done)
    monkeypatch.setattr(distributed, "gpu_count", lambda: 0)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8123")
    assert distributed.supervise(str(tmp_path), ["exp"], 2, host="0.0.0.0", log=lambda *_: None) == 0
    assert started["chief"]["KERASTUNER_ORACLE_IP"] == "0.0.0.0"
    for worker in ("worker0", "worker1"):
        assert started[worker]["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
        assert started[worker]["KERASTUNER_ORACLE_PORT"] == started["chief"]["KERASTUNER_ORACLE_PORT"] == "8123"


def started_by_supervise(tmp_path, monkeypatch, workers, gpus, environ=None, driver=False):
    """{KERASTUNER_TUNER_ID: environment} of the processes `supervise` starts on a host with `gpus` GPUs (as
    nvidia-smi lists them) and an NVIDIA driver if `driver`, CUDA_VISIBLE_DEVICES as in `environ` (absent:
    unset), and the lines it logs."""
    started, logged = {}, []

    class Done:  # a process that has already finished its part
        pid = 1

        def __init__(self, command, **kwargs):
            started[kwargs["env"]["KERASTUNER_TUNER_ID"]] = kwargs["env"]

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(distributed.subprocess, "Popen", Done)
    monkeypatch.setattr(distributed, "gpu_count", lambda: gpus)
    monkeypatch.setattr(distributed, "NVIDIA_DRIVER", str(tmp_path) if driver else str(tmp_path / "no-driver"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for name, value in (environ or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8123")
    assert distributed.supervise(str(tmp_path), ["exp"], workers, log=logged.append) == 0
    return started, logged


@pytest.mark.parametrize("gpus, environ, workers, expected", [
    (2, None, 2, ["0", "1"]),  # one worker per GPU
    (2, None, 3, ["0", "1", "0"]),  # more workers than GPUs: round-robin, two share GPU 0
    (4, {"CUDA_VISIBLE_DEVICES": "2,3"}, 2, ["2", "3"]),  # the GPUs the user left visible, not GPUs 0 and 1
    (1, {"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}, 3, ["GPU-aa", "GPU-bb", "GPU-aa"]),  # UUIDs as given
    (4, {"CUDA_VISIBLE_DEVICES": "1,-1,2"}, 2, ["1", "1"]),  # CUDA reads up to the first invalid entry
])
def test_on_a_gpu_host_worker_k_sees_the_k_th_visible_gpu_alone(tmp_path, monkeypatch, gpus, environ, workers,
                                                                expected):
    started, logged = started_by_supervise(tmp_path, monkeypatch, workers, gpus, environ)
    assert [started[f"worker{k}"]["CUDA_VISIBLE_DEVICES"] for k in range(workers)] == expected
    assert started["chief"]["CUDA_VISIBLE_DEVICES"] == ""  # the coordinator trains nothing
    for k in range(workers):  # a GPU worker is not limited to a share of the CPU threads
        assert "BPFREE_INTRA_OP_THREADS" not in started[f"worker{k}"]
    assert f"CUDA_VISIBLE_DEVICES {', '.join(expected)}" in logged[0], logged


@pytest.mark.parametrize("gpus, environ", [(0, None), (2, {"CUDA_VISIBLE_DEVICES": ""}),
                                           (2, {"CUDA_VISIBLE_DEVICES": "-1"})])
def test_without_a_visible_gpu_workers_share_the_cpu_cores(tmp_path, monkeypatch, gpus, environ):
    started, logged = started_by_supervise(tmp_path, monkeypatch, 2, gpus, environ)
    for k in range(2):
        assert started[f"worker{k}"]["CUDA_VISIBLE_DEVICES"] == ""
        assert int(started[f"worker{k}"]["BPFREE_INTRA_OP_THREADS"]) >= 1
    assert "CPU cores" in logged[0] and len(logged) == 1, logged


def test_a_driver_without_nvidia_smi_is_said_not_silently_run_on_the_cpu(tmp_path, monkeypatch):
    """No nvidia-smi (gpu_count 0) on a host whose NVIDIA driver is loaded: the workers get the CPU, and the
    log says how to give them the GPUs; CUDA_VISIBLE_DEVICES then names them."""
    started, logged = started_by_supervise(tmp_path, monkeypatch, 2, 0, driver=True)
    assert started["worker0"]["CUDA_VISIBLE_DEVICES"] == "" and "CUDA_VISIBLE_DEVICES" in logged[1], logged
    started, logged = started_by_supervise(tmp_path, monkeypatch, 2, 0, {"CUDA_VISIBLE_DEVICES": "0,1"}, driver=True)
    assert [started[f"worker{k}"]["CUDA_VISIBLE_DEVICES"] for k in range(2)] == ["0", "1"] and len(logged) == 1


@pytest.mark.slow
def test_worker_killed_mid_trial_is_restarted_and_resumes_its_trial(tmp_path, preset, _kill_leftovers):
    exp = tmp_path / "exp"
    # A checkpoint every epoch (the default writes one at most every 30 s: a kill before the first would
    # start the execution over, which is right, but not what this test checks).
    proc = launch(exp, preset(8), "--workers", "2", "--checkpoint_seconds", "0")
    _kill_leftovers.append(proc)
    running = {}

    def a_trial_is_midway():
        for tid, data in found(exp).items():
            if data["status"] == "running" and data["history"].get("loss"):
                running.update(tid=tid, worker=data["worker"])
                return True
        return False

    wait_for(a_trial_is_midway, proc)
    pid = json.loads((exp / "distributed.json").read_text())["workers"][running["worker"]]
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert f"{running['worker']} exited with -9; restart 1" in out
    assert_complete(exp, 8)
    # The killed execution resumed from its last checkpoint instead of starting over.
    assert found(exp)[running["tid"]].get("resumed_at_epochs"), found(exp)[running["tid"]]


@pytest.mark.slow
def test_coordinator_killed_then_command_rerun_resumes(tmp_path, preset, _kill_leftovers):
    exp = tmp_path / "exp"
    proc = launch(exp, preset(6), "--workers", "2")
    _kill_leftovers.append(proc)
    wait_for(lambda: any(d["status"] == "completed" for d in found(exp).values()), proc)
    chief = json.loads((exp / "distributed.json").read_text())["chief"]
    os.kill(chief, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out[-3000:]
    completed_before = {t: d["history"] for t, d in found(exp).items() if d["status"] == "completed"}
    again = launch(exp, preset(6), "--workers", "2")
    _kill_leftovers.append(again)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    assert_complete(exp, 6)
    for tid, history in completed_before.items():
        assert found(exp)[tid]["history"] == history


@pytest.mark.slow
def test_sigterm_to_the_pid_the_lock_names_stops_the_search(tmp_path, preset, _kill_leftovers):
    """SIGTERM to the coordinator (the pid in the lock file) is a stop (exit 143), not a crash to restart."""
    exp = tmp_path / "exp"
    proc = launch(exp, preset(6), "--workers", "2")
    _kill_leftovers.append(proc)
    wait_for(lambda: any(d["status"] == "completed" for d in found(exp).values()), proc)
    (lock,) = exp.rglob(".search.lock")
    assert int(lock.read_text()) == json.loads((exp / "distributed.json").read_text())["chief"]
    os.kill(int(lock.read_text()), signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]


def run_late_worker(tmp_path, preset, delay, leftovers):
    exp = tmp_path / "exp"
    net = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    chief = launch(exp, preset(1), env={**net, "KERASTUNER_TUNER_ID": "chief"})
    leftovers.append(chief)
    time.sleep(delay)
    assert chief.poll() is None
    worker = launch(exp, preset(1), env={**net, "KERASTUNER_TUNER_ID": "late-worker"})
    leftovers.append(worker)
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, out[-3000:]
    out, _ = chief.communicate(timeout=60)
    assert chief.returncode == 0, out[-3000:]
    assert_complete(exp, 1)
    assert {d["worker"] for d in found(exp).values()} == {"late-worker"}


@pytest.mark.slow
def test_a_late_worker_joins(tmp_path, preset, _kill_leftovers):
    run_late_worker(tmp_path, preset, 15, _kill_leftovers)


@pytest.mark.slow
def test_a_worker_minutes_late_joins(tmp_path, preset, _kill_leftovers):
    run_late_worker(tmp_path, preset, 150, _kill_leftovers)


TOY = """
import os, sys, time
import grpc
import keras_tuner
from bpfree.tuning import GridOracle, SearchSpace
from bpfree.tuning.distributed import serve

class Tuner(keras_tuner.Tuner):
    def run_trial(self, trial, *args, **kwargs):
        time.sleep(0.5)
        return {"loss": 0.1}

def tuner(directory):
    space = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-3, 1e-2], "dropout": [0.0]}
    oracle = GridOracle(SearchSpace.create(space).grid(), os.path.join(directory, "project"), "loss")
    name = os.environ["KERASTUNER_TUNER_ID"]
    return Tuner(oracle=oracle, directory=os.path.join(directory, "kt"), project_name=name, overwrite=True)

if __name__ == "__main__":
    chief = tuner(sys.argv[1])
    print("serving", flush=True)
    serve(chief, poll_seconds=0.05, reply_seconds=0)
    import threading
    server_alive = any(t.name == "keras-tuner chief" and t.is_alive() for t in threading.enumerate())
    print("served", len(chief.oracle.handed_out), len(chief.oracle.remaining), server_alive, flush=True)
"""


def test_serve_runs_keras_tuners_public_chief_and_returns_once_every_worker_is_told(tmp_path, monkeypatch):
    """`serve` (in a chief process) through keras-tuner's public Tuner.search, two workers (threads here)
    through its public worker path: every point runs once, and `serve` returns within seconds of the
    last worker being told the grid is done, while keras-tuner's own loop (which polls every 20 s) still runs. Fails on a
    keras-tuner upgrade that changes the public chief/worker path."""
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    net = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    chief = subprocess.Popen([sys.executable, str(script), str(tmp_path)], text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**os.environ, **net, "KERASTUNER_TUNER_ID": "chief",
                                                            "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        monkeypatch.syspath_prepend(str(tmp_path))
        import toy

        for name, value in net.items():
            monkeypatch.setenv(name, value)
        workers = []
        for i in range(2):
            monkeypatch.setenv("KERASTUNER_TUNER_ID", f"worker{i}")
            workers.append(toy.tuner(str(tmp_path)))
        ended = {}

        def work(w):
            w.search()
            ended[w.tuner_id] = time.time()

        runs = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
        for r in runs:
            r.start()
        for r in runs:
            r.join(timeout=180)
        out, _ = chief.communicate(timeout=60)
    finally:
        sys.modules.pop("toy", None)
        if chief.poll() is None:
            chief.kill()
    assert chief.returncode == 0 and set(ended) == {"worker0", "worker1"}, out[-3000:]
    ran, remaining, server_alive = out.split("served ")[1].split()[:3]
    assert (int(ran), int(remaining)) == (4, 0), out[-3000:]
    # serve returned on the oracle's own signal, while keras-tuner's server loop (which polls every 20 s
    # once stopping) was still running: not by waiting for that loop to end. No clock involved.
    assert server_alive == "True", f"serve waited for keras-tuner's loop (keras-tuner {keras_tuner.__version__})"
    trials = [json.loads(p.read_text()) for p in (tmp_path / "kt" / "chief").glob("trial_*/trial.json")]
    points = {json.dumps(t["hyperparameters"]["values"], sort_keys=True) for t in trials}
    assert len(trials) == len(points) == 4 and {t["status"] for t in trials} == {"COMPLETED"}  # each point once


def test_serve_refuses_a_port_in_use(tmp_path, monkeypatch):
    class Tuner:
        oracle = GridOracle([], str(tmp_path), "loss")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(Tuner())
        assert not Tuner.oracle.all_told.is_set()


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE


def test_a_worker_told_the_grid_is_done_asks_nothing_more(tmp_path, monkeypatch):
    """The chief leaves once the oracle has told every tuner the grid is done, and can cut any reply after
    that (CI, test_a_late_worker_joins). A tuner asks with its one id (a trial holds a cohort of points, no
    second id holds more), so once told it makes no further call: keras-tuner's own loop ends there. (Before,
    a tuner held trials under invented ids ``<id>~k`` and asked on the next one after being told.)"""
    from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search

    calls, told = [], []
    original = GridOracle.create_trial

    def create_trial(self, tuner_id):
        calls.append(tuner_id)
        if told:  # the coordinator has closed once it told the tuner
            raise _Unavailable()
        trial = original(self, tuner_id)
        if trial.status == "STOPPED":
            told.append(tuner_id)
        return trial

    monkeypatch.setattr(GridOracle, "create_trial", create_trial)
    space = SearchSpace.create({"algorithm": ["bp"], "arch": ["8"], "activation": ["tanh"], "batchnorm": [False],
                                "bw_init": ["ortho"], "lr": [1e-3, 1e-2], "dropout": [0.0]})
    config = SearchConfig(dataset="xor", objective="val_error_rate", num_epochs=1, use_xla=False)
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None, engine=EngineOptions(members=4))
    assert summary["ran"] == 2 and len(told) == 1, (calls, summary)
    assert {records.read(p)["status"] for p in records.iter_record_paths(str(tmp_path))} == {"completed"}
    assert len(set(calls)) == 1 and calls[-1] == told[0] and len(calls) == 2  # one cohort of two points, then told


def test_a_trial_that_came_over_grpc_is_the_same_grid_point():
    """keras-tuner's proto round trip (what a worker receives) gives a trial every hparam of the space, other
    rules' included; the tuner takes the active ones, so the worker trains and records the point the
    coordinator handed out (before: pepita's and bp's trial ids gained sdfa's projection_pool, and the
    coordinator waited for records that never came: 'search incomplete', exit 3)."""
    import keras_tuner

    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.hypermodel import BpfreeHyperModel
    from bpfree.tuning.space import SearchSpace
    from bpfree.tuning.trials import points_of

    space = SearchSpace.create({"algorithm": ["sdfa", "pepita", "bp", "tp_rinv"], "arch": ["16"], "activation": ["tanh"],
                                "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]})
    declared = keras_tuner.HyperParameters()
    BpfreeHyperModel(space, SearchConfig(dataset="digits"), (64,), 10).declare_hyperparameters(declared)
    for point in space.grid():
        hp = declared.copy()
        hp.values = dict(point)
        sent = keras_tuner.engine.trial.Trial(hp, trial_id="1")
        received = keras_tuner.engine.trial.Trial.from_proto(sent.to_proto())
        assert points_of(received) == [point]
