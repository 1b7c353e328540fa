"""Faults that used to block or change an experiment (issue 26): corrupt or foreign checkpoints, records
that contradict their file name or themselves. Each is named in one line, set aside, and its execution
goes on from its last good state or from epoch 0; the results reader skips and names them."""

import json
import os
import shutil

import numpy as np
import pytest

from bpfree import checkpoints, records, results
from bpfree.tuning import SearchConfig, SearchSpace, run_search
from bpfree.tuning import execution as execution_module

SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-2, 1e-3], "dropout": [0.0]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=2, use_xla=False)


def found(directory):
    out = {}
    for path in records.iter_record_paths(str(directory)):
        data = records.read(path)
        out[(data["trial_id"], data["execution"])] = data
    return out


def search(directory, **settings):
    lines = []
    summary = run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(SPACE),
                         log=lines.append)
    return summary, lines


def corrupt(path, how, other=None):
    data = open(path, "rb").read()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = b""
    elif how == "bit-flipped":  # a bit in the arrays' bytes: the zip's CRC no longer matches
        data = bytearray(data)
        data[len(data) // 2] ^= 0x10
        data = bytes(data)
    elif how == "foreign":  # the same model's checkpoint, of another execution
        data = open(other, "rb").read()
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The records of a 3-epoch search never interrupted."""
    directory = tmp_path_factory.mktemp("reference")
    search(directory, num_epochs=3)
    return {k: v["history"] for k, v in found(directory).items()}


KINDS = ["truncated", "empty", "bit-flipped", "foreign"]


@pytest.mark.parametrize("how", KINDS)
def test_a_corrupt_checkpoint_is_set_aside_and_its_execution_starts_over(tmp_path, monkeypatch, how, reference):
    """A killed search's checkpoint, damaged: the next run names it, moves it aside and finishes."""
    original, original_init = execution_module.RecordCallback.on_epoch_end, execution_module.RecordCallback.__init__

    def killed_after_epoch_1(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(execution_module.RecordCallback, "__init__", lambda self, run, n, s: original_init(self, run, n, 0))
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", killed_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, num_epochs=3)
    monkeypatch.undo()
    ckpts = sorted(tmp_path.rglob("execution_0.ckpt.npz"))
    assert ckpts, "no checkpoint to corrupt"
    for path in ckpts:  # each says whose it is
        assert json.loads(str(np_load(path)["meta"]))["identity"] == checkpoints.identity(str(path))
    bad = ckpts[0]
    if how == "foreign":  # another execution's checkpoint of the same model, copied here (it names its own)
        data = np_load(bad)
        meta = json.loads(str(data["meta"]))
        meta["identity"] = {**meta["identity"], "execution": 5}
        data["meta"] = np.array(json.dumps(meta))
        with open(bad, "wb") as f:
            np.savez(f, **data)
    else:
        corrupt(bad, how)
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    named = [line for line in lines if "checkpoint" in line.lower() and "moved aside" in line]
    assert len(named) == 1 and "\n" not in named[0], lines
    assert [p.name.endswith("_execution_0.ckpt.npz") for p in bad.parent.glob("corrupt_*")] == [True]
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert results.main([str(tmp_path)]) == 0


def np_load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("how", KINDS)
def test_a_corrupt_final_state_is_set_aside_when_growing(tmp_path, how, reference):
    """Growing the epochs resumes from `.final.npz`; a damaged or foreign one restarts its execution."""
    search(tmp_path, num_epochs=2)
    finals = sorted(tmp_path.rglob("execution_0.final.npz"))
    assert len(finals) == 2
    corrupt(finals[0], how, other=finals[1])
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    assert sum("moved aside" in line for line in lines) == 1, lines
    assert sum("extending to 3 epochs" in line for line in lines) == 1, lines
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference


def test_a_checkpoint_without_identity_still_restores(tmp_path):
    """Checkpoints written before they recorded whose they are restore as before."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    path = str(tmp_path / "records" / "t" / "execution_0.ckpt.npz")
    checkpoints.save(path, model, 1, {"loss": [1.0]})
    data = np_load(path)
    meta = json.loads(str(data["meta"]))
    del meta["identity"]
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path[: -len(".npz")], **data)
    assert checkpoints.restore(path, model) == (1, {"loss": [1.0]})
    shutil.move(path, str(tmp_path / "records" / "t" / "execution_1.ckpt.npz"))
    assert checkpoints.restore(str(tmp_path / "records" / "t" / "execution_1.ckpt.npz"), model)[0] == 1


# ------------------------------------------------------------------------------------- records
def test_a_record_copied_over_another_points_file_is_set_aside_and_rerun(tmp_path, reference):
    """A's record in B's file: B is not finished (and A is not counted twice); the search repairs it."""
    search(tmp_path, num_epochs=3)
    a, b = sorted(records.iter_record_paths(str(tmp_path)))
    shutil.copy(a, b)
    errors = []
    frame = results.load(str(tmp_path), errors=errors)
    assert len(errors) == 1 and b in errors[0] and frame["trial_id"].nunique() == 1
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    assert sum("corrupt record moved aside" in line for line in lines) == 1
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert results.main([str(tmp_path)]) == 0


def test_a_record_of_another_execution_is_set_aside(tmp_path):
    search(tmp_path, num_epochs=1, executions_per_trial=2)
    path = sorted(records.iter_record_paths(str(tmp_path)))[0]
    other = path.replace("execution_0.json", "execution_1.json")
    shutil.copy(path, other)
    with pytest.raises(records.RecordError, match="execution 0"):
        records.read(other)
    summary, lines = search(tmp_path, num_epochs=1, executions_per_trial=2)
    assert summary["unfinished"] == [] and summary["ran"] == 1


@pytest.mark.parametrize("early_stopping,final", [(False, True), (True, True), (False, False)])
def test_a_completed_record_shorter_than_its_epochs_is_repaired(tmp_path, reference, early_stopping, final):
    """Completed after 1 of 3 epochs, where early stopping (off, or patience 2) could not have ended it: the
    reader names and skips it; the search repairs it from its final state (or runs it again without one)."""
    settings = dict(num_epochs=3, use_early_stopping=early_stopping, early_stopping_patience=2)
    search(tmp_path, **settings)
    path = sorted(records.iter_record_paths(str(tmp_path)))[0]
    data = records.read(path)
    data["history"] = {k: v[:1] for k, v in data["history"].items()}
    with open(path, "w") as f:
        json.dump(data, f)
    if not final:
        os.remove(checkpoints.path_for(path, checkpoints.FINAL_SUFFIX))
    assert "1 of its 3 epochs" in records.inconsistency(records.read(path))
    assert not records.done(records.read(path), 3)
    errors = []
    results.load(str(tmp_path), errors=errors)
    assert len(errors) == 1 and path in errors[0]
    summary, lines = search(tmp_path, **settings)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    assert sum("extending to 3 epochs at epoch 3" in line for line in lines) == int(final), lines
    if not early_stopping:
        assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert records.inconsistency(records.read(path)) is None


# ------------------------------------------------------------------------------------- resource bombs
TINY = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 1

[space]
algorithm = ["bp"]
arch = ["{arch}"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3]
dropout = [0.0]
"""


@pytest.mark.parametrize("case", ["members", "batch_size", "zero", "urandom", "fifo", "big_preset", "xor", "deep_arch",
                                  "long_arch", "megabyte_arch", "long_builder"])
def test_resource_bombs_exit_2_with_one_line_in_seconds(tmp_path, case, cli_in_process):
    import time

    preset, args, fragments = tmp_path / "preset.toml", [], []
    arch = "16"
    if case == "members":
        args, fragments = ["--members", 10**9], ["--members", "1000000000"]
    elif case == "batch_size":
        args, fragments = ["--batch_size", 2**63], ["batch_size", str(2**63)]
    elif case in ("zero", "urandom"):
        preset, fragments = f"/dev/{case}", [f"/dev/{case}", "regular file"]
    elif case == "fifo":
        preset = tmp_path / "fifo"
        os.mkfifo(preset)
        fragments = [str(preset), "regular file"]
    elif case == "big_preset":
        fragments = ["larger than"]
    elif case == "xor":
        args, fragments = ["--dataset", "xor:100000000000"], ["xor:100000000000", "10_000_000"]
    elif case == "deep_arch":
        arch, fragments = "-".join(["16"] * 90), ["90 layers", "at most 64"]
    elif case == "long_arch":
        arch, fragments = "1" * 120_000, ["120000 characters"]
    elif case == "megabyte_arch":
        args, fragments = ["--arch", "16-" * 350_000 + "16"], ["1050002 characters"]  # (argv takes 128 KiB at most)
    elif case == "long_builder":
        arch, fragments = "mymodels:mlp(widths=[" + "8," * 60_000 + "])", ["characters"]
    if case not in ("zero", "urandom", "fifo"):
        text = TINY.format(arch=arch)
        preset.write_text(text + ("# padding\n" * 200_000 if case == "big_preset" else ""))
    start = time.monotonic()
    proc = cli_in_process(tmp_path / "exp", "--hparams", preset, *args)
    assert time.monotonic() - start < 30
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert len(lines[0]) < 400
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not list((tmp_path / "exp").rglob("execution_*.json"))


def test_the_caps_leave_real_values_alone():
    from bpfree.arch import parse_layers
    from bpfree.datasets import catalog

    assert len(parse_layers("-".join(["16"] * 64))) == 64
    assert catalog.resolve("xor:10000000") == ("embedded", "xor:10000000")


# ------------------------------------------------------------------------------------- smaller items
def test_a_same_kernel_larger_than_the_map_can_use_is_refused(cli_in_process, tmp_path):
    """conv4k999 on 8×8 digits used to pass validation and then abort TensorFlow (SIGABRT)."""
    (tmp_path / "preset.toml").write_text(TINY.format(arch="conv4k999"))
    proc = cli_in_process(tmp_path / "exp", "--hparams", tmp_path / "preset.toml")
    assert proc.returncode == 2 and "conv4k999" in proc.stderr and "at most 15" in proc.stderr, proc.stderr
    from bpfree.arch import parse_layers

    (spec,) = parse_layers("conv4k15")
    assert spec.output_shape((8, 8, 1)) == (8, 8, 4)


def test_the_search_lock_never_follows_a_link(tmp_path):
    from bpfree.tuning.lock import ExperimentLock, ExperimentLocked

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "exp").mkdir()
    os.symlink(victim, tmp_path / "exp" / ".search.lock")
    with pytest.raises(ExperimentLocked, match="symbolic link"):
        with ExperimentLock(str(tmp_path / "exp")):
            pass
    assert victim.read_text() == "precious"
    os.remove(tmp_path / "exp" / ".search.lock")
    with ExperimentLock(str(tmp_path / "exp")) as lock:
        assert open(lock.path).read() == str(os.getpid())


def test_atomic_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    from bpfree import io

    mask = os.umask(0o027)
    try:
        calls = []
        monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0)
        io.write_json(str(tmp_path / "a.json"), {"x": 1})
        assert calls == []  # it used to set the umask to 0 and back on every write
        assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o640
        assert not [p for p in os.listdir(tmp_path) if p.startswith(io.TEMP_PREFIX)]
    finally:
        monkeypatch.undo()
        os.umask(mask)


def test_train_bash_writes_through_no_link_and_stops_on_sigint_to_the_search(tmp_path):
    """status.tmp / src.tar.xz.tmp / status planted as links to another file: train.bash leaves that
    file alone. SIGINT to the search itself (not only to train.bash) stops it: 130, status stopped."""
    import signal

    from test_bad_input import cleanup, train_bash, wait_until_training, write_preset

    exp = tmp_path / "exp"
    exp.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for name in ("status.tmp", "src.tar.xz.tmp", "status"):
        os.symlink(victim, exp / name)
    proc, pid = train_bash(str(exp), write_preset(tmp_path, epochs=10_000)), None
    try:
        pid = wait_until_training(str(exp), proc)
        assert victim.read_text() == "precious" and not os.path.islink(exp / "status")
        assert os.path.getsize(exp / "src.tar.xz") > 0
        os.kill(pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert (exp / "status").read_text().startswith("stopped"), err
        assert "restart 1 of 5" not in err
    finally:
        cleanup(proc, pid)
    assert victim.read_text() == "precious"


@pytest.fixture(scope="module")
def small_experiment(tmp_path_factory):
    directory = tmp_path_factory.mktemp("small")
    search(directory, num_epochs=1)
    return directory


@pytest.mark.parametrize("where", ["no_extension", "unwritable", "read_only", "full", "missing_dir"])
def test_results_outputs_that_cannot_be_written_exit_2_with_one_line(small_experiment, tmp_path, where, capsys,
                                                                     monkeypatch):
    from bpfree import io

    out = tmp_path / "out"
    out.mkdir()
    plot, report = str(out / "c.png"), str(out / "r.md")
    if where == "no_extension":
        plot = str(out / "c")
    elif where == "unwritable":
        plot, report = "/proc/c.png", "/proc/r.md"
    elif where == "read_only":
        os.chmod(out, 0o500)
    elif where == "missing_dir":
        plot, report = "/dev/null/c.png", "/dev/null/r.md"
    elif where == "full":
        def full(path, write, suffix=""):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(io, "write_atomic", full)
    if where == "read_only" and os.access(out, os.W_OK):
        pytest.skip("running as a user who may write anywhere")
    for args in (["--plot", plot], ["--report", report]):
        capsys.readouterr()
        code = results.main([str(small_experiment), *args])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        assert args[1] in err[0] and "Traceback" not in err[0]
        if where == "no_extension":
            break
    os.chmod(out, 0o700)
    assert sorted(os.listdir(out)) == []  # no empty `c`, no stray temporary file


def test_the_report_suggests_the_tracker_flag_that_exists(small_experiment, tmp_path):
    from bpfree.tuning import cli

    results.main([str(small_experiment), "--report", str(tmp_path / "r.md")])
    text = (tmp_path / "r.md").read_text()
    assert "--trackers" not in text and "`--tracker bp_cosine --tracker weight_alignment`" in text
    assert "tracker" in cli.FLAGS and "trackers" not in cli.FLAGS


def test_a_killed_dry_run_leaves_no_temporary_folder(tmp_path):
    """kill -9 mid-estimate leaves its folder; the next dry run removes it (its process is gone)."""
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "preset.toml").write_text(TINY.format(arch="16"))
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.path.join(root, "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "bpfree", str(tmp_path / "exp"), "--hparams", str(tmp_path / "preset.toml"),
               "--dry_run"]
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp.glob("bpfree-dry-run-*/*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp.glob("bpfree-dry-run-*")), "the dry run never made its folder"
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.listdir(tmp) == []


def test_a_failed_checkpoint_write_in_a_member_program_retries_only_that_execution(tmp_path, monkeypatch):
    """Disk full while one member's checkpoint is written: that execution is an accident (retried by the
    next run, which ends with the uninterrupted numbers); the program's other member finishes untouched."""
    from bpfree.tuning.options import EngineOptions

    original, failed = checkpoints.save, []

    def full_disk(path, model, epochs_done, history):
        if "lr0.01-" in path and epochs_done == 2 and not failed:
            failed.append(path)
            raise OSError(28, "No space left on device")
        return original(path, model, epochs_done, history)

    monkeypatch.setattr(checkpoints, "save", full_disk)
    engine = EngineOptions(members=2, checkpoint_seconds=0)
    lines = []
    summary = run_search(str(tmp_path), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
                         log=lines.append, engine=engine)
    assert failed
    statuses = {k[0]: v["status"] for k, v in found(tmp_path).items()}
    assert sorted(statuses.values()) == ["completed", "error"], (statuses, lines)
    (untouched,) = [k for k, v in found(tmp_path).items() if v["status"] == "completed"]
    before = found(tmp_path)[untouched]
    monkeypatch.undo()
    summary = run_search(str(tmp_path), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
                         log=lines.append, engine=engine)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    after = found(tmp_path)
    assert after[untouched] == before
    # Without XLA a member's numbers depend on the member count (`options.program_members`): the reference
    # is the same search with the same --members, never interrupted.
    run_search(str(tmp_path / "fresh"), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
               log=lines.append, engine=engine)
    assert {k: v["history"] for k, v in after.items()} == {k: v["history"] for k, v in found(tmp_path / "fresh").items()}
