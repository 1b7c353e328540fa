"""The Dockerfile cannot run here (no Docker engine), so its install steps are checked instead."""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dockerfile_instructions():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    return [tuple(l.split(None, 1)) for l in lines]


def pipfile_pin(package):
    text = open(os.path.join(ROOT, "Pipfile")).read()
    match = re.search(rf'^{re.escape(package)}\s*=\s*"==([^"]+)"', text, re.M)
    return match.group(1)


def locked_version(package):
    with open(os.path.join(ROOT, "Pipfile.lock")) as f:
        return json.load(f)["default"][package]["version"].removeprefix("==")


def test_base_image_matches_the_pinned_tensorflow():
    """No Docker Hub here: the tag cannot be looked up, so it must be the official GPU tag of the TensorFlow
    that Pipfile.lock installs (tensorflow/tensorflow publishes VERSION-gpu for every release)."""
    (kind, image), *_ = dockerfile_instructions()
    assert kind == "FROM"
    assert image == f"tensorflow/tensorflow:{pipfile_pin('tensorflow')}-gpu"
    assert image == f"tensorflow/tensorflow:{locked_version('tensorflow')}-gpu"


def base_image_check():
    """The build step that compares the base image's TensorFlow with the lock's, as a shell command."""
    runs = [args for kind, args in dockerfile_instructions() if kind == "RUN" and "Pipfile.lock" in args
            and "importlib.metadata" in args]
    assert len(runs) == 1, runs
    return runs[0]


def test_the_build_checks_the_base_images_tensorflow_against_the_lock(tmp_path):
    """The step run here (this environment has the lock's TensorFlow, as the base image must): it passes, and
    fails with a lock that pins another version."""
    command = base_image_check()
    assert command.startswith("python3 ")
    command = shlex.quote(sys.executable) + command.removeprefix("python3")
    shutil.copy(os.path.join(ROOT, "Pipfile.lock"), tmp_path / "Pipfile.lock")
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lock = json.loads((tmp_path / "Pipfile.lock").read_text())
    lock["default"]["tensorflow"]["version"] = "==2.0.0"
    (tmp_path / "Pipfile.lock").write_text(json.dumps(lock))
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Pipfile.lock pins 2.0.0" in done.stderr, done.stderr[-2000:]


def dockerignore_patterns():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "the matcher below knows no exceptions"
    return [p.rstrip("/") for p in patterns]


def ignored(path, patterns):
    """Whether Docker leaves `path` (relative, /-separated) out of the build context: a pattern matches the path
    or a parent directory (with `**/` in front, from any directory down). fnmatch's `*` also matches `/`: this
    errs towards "ignored", so the check that tracked files are kept errs towards failing."""
    parts = path.split("/")
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        pattern = pattern.removeprefix("**/")
        starts = range(len(parts)) if anywhere else [0]
        if any(fnmatch.fnmatchcase("/".join(parts[i:j]), pattern) for i in starts for j in range(i + 1, len(parts) + 1)):
            return True
    return False


def test_dockerignore_keeps_the_environment_and_data_out_and_every_tracked_file_in():
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".venv/lib/python3.11/site-packages/tensorflow/__init__.py",
                 "data/quickstart/status", "data/mnist/project/trial_0/checkpoint.weights.h5",
                 "src/bpfree/__pycache__/arch.cpython-311.pyc", "src/bpfree.egg-info/PKG-INFO", "model.keras"):
        assert ignored(path, patterns), path
    # .git stays: in the image train.bash archives the tracked files of the search it runs (git ls-files)
    assert not ignored(".git/HEAD", patterns)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = tracked.stdout.splitlines()
    assert "train.bash" in files and "Pipfile.lock" in files
    assert [path for path in files if ignored(path, patterns)] == []


def readme_docker_runs():
    """[(docker options, image, arguments)] of every `docker run` in README.md."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    runs = []
    for command in re.findall(r"`(docker run [^`]+)`", text):
        tokens = shlex.split(command)[2:]
        options = []
        while tokens[0].startswith("-"):
            takes_value = tokens[0] in ("--gpus", "-v", "--volume", "--entrypoint", "-e", "--env", "--user", "-u")
            options.append(tokens[:2] if takes_value else tokens[:1])
            tokens = tokens[2:] if takes_value else tokens[1:]
        runs.append((options, tokens[0], tokens[1:]))
    return runs


def test_readmes_docker_runs_mount_data_and_the_caches_and_run_searches_of_sensible_size():
    """Every README `docker run` of a search mounts data/ and the dataset caches' volume, and runs a grid the
    search runs without --yes (the default preset's 6,912 points would need it)."""
    from absl import flags

    from bpfree.tuning import cli, plan

    env = dockerfile_env()
    volumes = [args for kind, args in dockerfile_instructions() if kind == "VOLUME"]
    assert volumes == ['["/cache"]']
    assert env["TFDS_DATA_DIR"].startswith("/cache/") and env["BPFREE_CACHE_DIR"].startswith("/cache/")
    runs = readme_docker_runs()
    searches = [run for run in runs if ["--entrypoint", "python3"] not in run[0]]
    assert len(searches) >= 2
    for options, image, args in searches:
        assert image == "bpfree" and ["--gpus", "all"] in options
        mounts = [value for name, *value in options if name == "-v" for value in value]
        assert any(m.endswith(":/workspace/bpfree/data") for m in mounts), mounts
        assert any(m.endswith(":/cache") for m in mounts), mounts
        assert "--yes" not in args
        directory, flag_args = args[0], args[1:]
        if not flag_args:  # train.bash runs the quickstart
            flag_args = ["--hparams", os.path.join(ROOT, "hparams", "quickstart.toml")]
        flag_args = [os.path.join(ROOT, a) if a.startswith("hparams/") else a for a in flag_args]
        flags.FLAGS.unparse_flags()
        try:
            _, config, space = cli.resolve(flags.FLAGS(["bpfree", directory, *flag_args]))
        finally:
            flags.FLAGS.unparse_flags()
        size = plan.GridSize.of(space, config)
        assert size.execution_epochs <= plan.ASK_ABOVE, (args, size)
    loads = [args for options, _, args in runs if ["--entrypoint", "python3"] in options]
    assert loads and all("import bpfree" in args[1] for args in loads)


def dockerfile_env():
    env = {}
    for kind, args in dockerfile_instructions():
        if kind == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(args))
    return env


def test_the_dockerfile_says_import_bpfree_registers_what_loading_a_model_needs():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    assert "`import bpfree` registers every class Keras needs to load a saved model" in text


def test_copied_paths_and_entrypoint_exist():
    for kind, args in dockerfile_instructions():
        if kind == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                if source != ".":
                    assert os.path.exists(os.path.join(ROOT, source)), source
        if kind == "ENTRYPOINT":
            script = os.path.join(ROOT, eval(args)[0])  # a JSON list
            assert os.access(script, os.X_OK), script


def pipenv_command():
    # scripts/setup_venv.bash installs pipenv for the system Python, not inside .venv.
    for python in (sys.executable, shutil.which("python3.11"), shutil.which("python3")):
        if python and subprocess.run([python, "-m", "pipenv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "pipenv"]
    pytest.fail("pipenv not found: scripts/setup_venv.bash installs it")


def exported_requirements():
    out = subprocess.run(pipenv_command() + ["requirements", "--dev"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PIPENV_VERBOSITY": "-1"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_lock_exports_the_pins_the_image_installs():
    requirements = exported_requirements()
    for package in ("tensorflow", "keras-tuner", "tensorflow-datasets"):
        assert f"{package}=={pipfile_pin(package)}" in requirements


@pytest.mark.slow
def test_install_steps_resolve_in_a_clean_virtualenv(tmp_path):
    """Replays the image's pip steps in a fresh virtualenv (resolution only: --dry-run)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(exported_requirements())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    out = subprocess.run(pip + ["install", "--dry-run", "-r", str(requirements)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    out = subprocess.run(pip + ["install", "--dry-run", "--no-deps", "-e", ROOT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_the_gpu_install_path_resolves_with_the_lock_in_a_clean_virtualenv(tmp_path):
    """README, GPU without Docker: the lock's requirements and `-e .[gpu]` together (resolution only), adding
    only NVIDIA's wheels to what the lock installs."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(exported_requirements())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    report = tmp_path / "report.json"
    out = subprocess.run(pip + ["install", "--dry-run", "--report", str(report), "-r", str(requirements),
                                "-e", f"{ROOT}[gpu]"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    pins = (re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", line)
            for line in requirements.read_text().splitlines())
    pinned = {pin.group(1).lower().replace("_", "-"): pin.group(2) for pin in pins if pin}
    extra = sorted(set(installed) - set(pinned) - {"bpfree"})
    assert extra and all(name.startswith("nvidia-") for name in extra), extra
    assert {name: installed[name] for name in pinned if name in installed} == {
        name: version for name, version in pinned.items() if name in installed}
