"""The Dockerfile cannot run here (no Docker engine), so its install steps are checked instead."""

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


def test_base_image_matches_the_pinned_tensorflow():
    (kind, image), *_ = dockerfile_instructions()
    assert kind == "FROM"
    assert image == f"tensorflow/tensorflow:{pipfile_pin('tensorflow')}-gpu"


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
