"""Faults of input and environment (issue 26 items 4 and 7): resource bombs refused in seconds with one
line, exit 2; a kernel TensorFlow would abort on; files never written through links another user
planted; the umask never touched; results outputs that cannot be written; a killed dry run's folder;
SIGINT to the search under train.bash."""

import os

import pytest

from bpfree import results
from fresh_process import fresh_env
from test_faults import search

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
    env = fresh_env(TMPDIR=str(tmp))
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
