"""Every command of README.md runs (issue 15), in a form that proves it works without hours of training.

- Searches (`./train.bash …`, `python -m bpfree …`) run as `--dry_run`: every flag is parsed and every grid
  point validated, nothing is written. The fast tier leaves out the timing run; the slow tier times the first
  command of each preset (tfds sets through `tfds.testing.mock_data`), the quickstart through train.bash.
- `python -m bpfree.results …` runs on a tiny real search in `data/quickstart`, as do the Python blocks,
  executed in order in one namespace, with one epoch where they train.
- The experiments (`python -m bpfree.experiments.*`) run at their shortest settings (slow tier).
- A command that cannot run here is in SKIPPED with the reason; any other command this file does not know
  fails `test_every_readme_command_is_run_or_skipped_with_a_reason`, so a new README command needs coverage.
"""

import contextlib
import os
import re
import shlex
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SKIPPED = {
    "./test.bash": "runs the whole test suite, this file among it",
    "ssh -N -f -L 8000:127.0.0.1:8000 hostA": "needs a second host reached over SSH",
}
PLACEHOLDERS = ("[flags]",)  # template text in a command, dropped
# The experiments' shortest runs: flags appended to the README's (absl: the last value of a flag wins).
SHORTEST = {
    "bpfree.experiments.lagline": ["--t_train=4", "--t_init=2", "--log_every=2"],
    "bpfree.experiments.lagnet": ["--t_total=2", "--t_start=1", "--log_every=1"],
    "bpfree.experiments.mnist1d": ["--epochs=1", "--train_subset=100", "--test_subset=100"],
    "bpfree.experiments.gsc": ["--epochs=1", "--synthetic=8", "--batch_size=4", "--block_size=2", "--max_steps=20"],
}


def blocks(language):
    """The fenced ```<language> blocks of README.md, in order."""
    with open(README, encoding="utf-8") as f:
        return re.findall(rf"^```{language}\n(.*?)^```$", f.read(), re.M | re.S)


def commands():
    """[(command line, tokens)] of every bash block: continuation lines joined, comments dropped."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                found.append((" ".join(line.split("#")[0].split()), tokens))
    return found


def parse(tokens):
    """(kind, environment, arguments) of a command: kind "search" (arguments: `python -m bpfree`'s, as train.bash
    passes them), "results", "benchmarks", "experiment" (arguments: the module, then its flags) or None."""
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, _, value = tokens[0].partition("=")
        env[name] = value
        tokens = tokens[1:]
    tokens = [t for t in tokens if t not in PLACEHOLDERS]
    if tokens[:1] == ["./train.bash"] and len(tokens) > 1:
        return "search", env, tokens[1:]  # train.bash hands its arguments to the search as they are
    if tokens[:3] == ["python", "-m", "bpfree"]:
        return "search", env, tokens[3:]
    if tokens[:3] == ["python", "-m", "bpfree.results"]:
        return "results", env, tokens[3:]
    if tokens[:3] == ["python", "-m", "bpfree.benchmarks"]:
        return "benchmarks", env, tokens[3:]
    if tokens[:2] == ["python", "-m"] and len(tokens) > 2 and tokens[2].startswith("bpfree.experiments."):
        return "experiment", env, tokens[2:]
    return None, env, tokens


def of_kind(kind):
    return [(line, *parse(tokens)[1:]) for line, tokens in commands() if parse(tokens)[0] == kind]


@pytest.fixture
def in_readme_dir(tmp_path, monkeypatch):
    """A working directory like the repository's root (hparams/ there), empty otherwise."""
    (tmp_path / "hparams").symlink_to(os.path.join(ROOT, "hparams"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def search_cli(monkeypatch, capsys, args, env):
    """`python -m bpfree *args` through the CLI's main in this process, under `env` for this call only."""
    from absl import flags

    from bpfree.tuning import cli

    with monkeypatch.context() as m:
        for name, value in env.items():
            m.setenv(name, value)
        flags.FLAGS.unparse_flags()
        try:
            rc = cli.main(flags.FLAGS(["bpfree", *args]))
        finally:
            flags.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    return types.SimpleNamespace(returncode=rc, stdout=out, stderr=err)


def assert_dry_run(done, directory, existed):
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: nothing is trained" in done.stdout and "\ngrid: " in done.stdout, done.stdout
    assert existed or not os.path.exists(directory)  # nothing written


# ------------------------------------------------------------------------------------------- coverage
def test_every_readme_command_is_run_or_skipped_with_a_reason():
    lines = [line for line, _ in commands()]
    unknown = [line for line, tokens in commands() if parse(tokens)[0] is None and line not in SKIPPED]
    assert unknown == [], "README commands that tests/test_readme.py neither runs nor skips with a reason"
    assert [line for line in SKIPPED if line not in lines] == [], "skips of commands the README no longer has"
    kinds = {parse(tokens)[0] for _, tokens in commands()}
    assert {"search", "results", "benchmarks", "experiment"} <= kinds and blocks("python")


# ------------------------------------------------------------------------------------------- tables
@pytest.mark.parametrize("line,env,args", of_kind("benchmarks"), ids=[line for line, *_ in of_kind("benchmarks")])
def test_readme_benchmark_commands_run_as_dry_runs(line, env, args, in_readme_dir, monkeypatch, capsys):
    """Every table's searches checked as they would run (settings, every grid point); nothing trained or written
    (the real-MNIST run of a table is tests/test_benchmarks.py's, slow tier)."""
    from bpfree.benchmarks.__main__ import main

    if "BPFREE_DATA_DIR" in env:  # the README's ../shared/data (IDX folders): a small one of that layout here
        from test_idx import write_idx_dir

        for name in ("mnist", "fashion_mnist"):
            write_idx_dir(in_readme_dir / "idx-data" / name)
        env = {**env, "BPFREE_DATA_DIR": str(in_readme_dir / "idx-data")}
    with monkeypatch.context() as m:
        for name, value in env.items():
            m.setenv(name, value)
        rc = main([*args, "--dry_run"])
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    assert "nothing trained (--dry_run)" in out and not os.path.exists("data")


# ------------------------------------------------------------------------------------------- searches
@pytest.mark.parametrize("line,env,args", of_kind("search"), ids=[line for line, *_ in of_kind("search")])
def test_readme_search_commands_run_as_dry_runs(line, env, args, in_readme_dir, monkeypatch, capsys):
    """Every flag parsed and every grid point validated; the timing run is left out (slow tier below)."""
    from bpfree.tuning import estimate

    timed = []
    monkeypatch.setattr(estimate, "estimate", lambda *a: timed.append(a) or types.SimpleNamespace(
        lines=lambda config: ["estimated wall time: not timed here"]))
    if "BPFREE_DATA_DIR" in env:  # the README's ../shared/data (IDX folders): a small one of that layout here
        from test_idx import write_idx_dir

        for name in ("mnist", "fashion_mnist"):
            write_idx_dir(in_readme_dir / "idx-data" / name)
        env = {**env, "BPFREE_DATA_DIR": str(in_readme_dir / "idx-data")}
    existed = os.path.exists(args[0])
    done = search_cli(monkeypatch, capsys, [*args, "--dry_run"], env)
    assert_dry_run(done, args[0], existed)
    assert len(timed) == 1 and "estimated wall time: not timed here" in done.stdout
    if "BPFREE_DATA_DIR" in env:
        assert f"from idx ({env['BPFREE_DATA_DIR']}/" in done.stdout, done.stdout


def first_per_preset():
    """The first search command of each preset (`--hparams`, default hparams/quickstart.toml): {preset: command}."""
    first = {}
    for line, env, args in of_kind("search"):
        preset = os.path.basename(args[args.index("--hparams") + 1]) if "--hparams" in args else "quickstart.toml"
        first.setdefault(preset, (line, env, args))
    return first


ESTIMATE_LINE = re.compile(r"^estimated wall time: \d[\d,.]* (s|min|h|days) on this machine", re.M)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(first_per_preset()))
def test_readme_search_commands_estimate_their_time(preset, in_readme_dir, monkeypatch, capsys):
    """The first command of each preset with its timing run: the quickstart through train.bash itself, the
    others in this process (tfds sets through mock data)."""
    import tensorflow_datasets as tfds

    line, env, args = first_per_preset()[preset]
    if line == "./train.bash data/quickstart":
        wrapper = in_readme_dir / "bin" / "python3"  # train.bash runs `python3` with BPFREE_SYSTEM_PYTHON set
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
        path = {"PYTHONPATH": os.path.join(ROOT, "src"), "BPFREE_SYSTEM_PYTHON": "1",
                "PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", os.path.join(ROOT, "train.bash"), "data/quickstart", "--dry_run"],
                              env={**os.environ, **env, **path}, capture_output=True, text=True, timeout=600)
        from bpfree.tuning.plan import GridSize
        from bpfree.tuning.presets import load_preset
        from bpfree.tuning.space import SearchSpace

        search, space = load_preset(os.path.join(ROOT, "hparams", "quickstart.toml"))  # train.bash's own preset
        size = GridSize(SearchSpace.create(space).size(), search["executions_per_trial"], search["num_epochs"])
        assert f"grid: {size}" in done.stdout, done.stdout
    else:
        monkeypatch.setenv("BPFREE_TFDS_DOWNLOAD", "0")
        with tfds.testing.mock_data(num_examples=200):
            done = search_cli(monkeypatch, capsys, [*args, "--dry_run"], env)
    assert_dry_run(done, args[0], existed=False)
    assert ESTIMATE_LINE.search(done.stdout), (line, done.stdout)


# ------------------------------------------------------------------------------------------- results, Python
@pytest.fixture
def quickstart_records(in_readme_dir, tiny_preset, monkeypatch, capsys):
    """A tiny real search where the README's results commands look: data/quickstart (conftest's digits grid,
    3 epochs, 2 executions)."""
    preset = tiny_preset(3, 2)
    done = search_cli(monkeypatch, capsys, ["data/quickstart", "--hparams", str(preset)], {})
    assert done.returncode == 0, done.stderr[-3000:]
    return in_readme_dir


def test_readme_results_commands_and_python_blocks_run(quickstart_records):
    for line, env, args in of_kind("results"):
        proc = subprocess.run([sys.executable, "-m", "bpfree.results", *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), **env})
        assert proc.returncode == 0, (line, proc.stderr[-3000:])
        for flag, path in zip(args, args[1:]):
            if flag in ("--plot", "--report", "--csv", "--latex", "--lr_plot"):  # a bare name: into the experiment
                assert (quickstart_records / args[0] / path).stat().st_size > 0, line
    namespace = {"__name__": "readme"}
    for code in blocks("python"):
        code = re.sub(r"\bepochs=\d+", "epochs=1", code)  # one epoch wherever a block trains
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            exec(compile(code, README, "exec"), namespace)
    assert (quickstart_records / "dfa.keras").stat().st_size > 0
    assert namespace["x_train"].shape[1:] == (64,)  # the example flattens digits' (8, 8, 1) images
    assert (quickstart_records / "curves.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------- experiments
@pytest.mark.slow
@pytest.mark.parametrize("line,env,args", of_kind("experiment"), ids=[line for line, *_ in of_kind("experiment")])
def test_readme_experiment_commands_run_at_their_shortest(line, env, args, tmp_path, monkeypatch):
    import importlib

    from bpfree import results

    module, flags = args[0], args[1:]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = importlib.import_module(module).main(["x", *flags, *SHORTEST[module], f"--exp_dir={tmp_path}"])
    assert rc == 0, line
    assert set(results.load(str(tmp_path))["status"]) == {"completed"}
