"""GPU set-up without a GPU (issue 24): the search turns memory growth on for every visible GPU before
TensorFlow creates its first tensor, and the `gpu` extra installs TensorFlow's CUDA wheels for the locked
TensorFlow. The device list is mocked: this machine has no GPU."""

import json
import os
import re
import subprocess
import sys
import tomllib

from fresh_process import fresh_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


def test_configure_tensorflow_turns_memory_growth_on_for_every_visible_gpu(monkeypatch):
    import tensorflow as tf

    from bpfree.tuning import cli

    calls = []
    devices = [tf.config.PhysicalDevice(name, "GPU") for name in GPUS]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: devices if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda d, on: calls.append((d.name, on)))
    monkeypatch.delenv("BPFREE_INTRA_OP_THREADS", raising=False)
    cli._configure_tensorflow()
    assert calls == [(name, True) for name in GPUS]


# A search's command line, run until its search modules are loaded (then it exits), with two fake GPUs: each
# call to set_memory_growth records whether TensorFlow's runtime had started (a tensor created) by then; the
# real function refuses (RuntimeError) once it has.
SEARCH_START = """
import json, sys
import tensorflow as tf
from tensorflow.python.eager import context

calls = []
real_list = tf.config.list_physical_devices
gpus = [tf.config.PhysicalDevice(name, "GPU") for name in {gpus!r}]
tf.config.list_physical_devices = lambda kind=None: list(gpus) if kind == "GPU" else real_list(kind)
tf.config.experimental.set_memory_growth = lambda device, on: calls.append(
    [device.name, on, context.context()._context_handle is not None])

from bpfree.tuning import cli

real_load = cli._load_search_modules

def load_then_stop():
    real_load()
    print(json.dumps(calls))
    sys.stdout.flush()
    raise SystemExit(0)

cli._load_search_modules = load_then_stop
cli.run(["bpfree", *sys.argv[1:]])
"""


def test_the_search_turns_memory_growth_on_before_tensorflow_starts(tmp_path):
    env = fresh_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BPFREE_INTRA_OP_THREADS", None)
    done = subprocess.run([sys.executable, "-c", SEARCH_START.format(gpus=GPUS), str(tmp_path / "exp"), "--hparams",
                           os.path.join(ROOT, "hparams", "quickstart.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    assert calls == [[name, True, False] for name in GPUS], calls  # every GPU, runtime not started yet
    assert not (tmp_path / "exp").exists()


def test_the_gpu_extra_installs_the_locked_tensorflow_with_its_cuda_wheels():
    """`pip install -e '.[gpu]'`: tensorflow[and-cuda] at the version Pipfile.lock pins (so pip adds the CUDA
    wheels and changes no locked package), an extra this TensorFlow declares."""
    from importlib import metadata

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        gpu = tomllib.load(f)["project"]["optional-dependencies"]["gpu"]
    with open(os.path.join(ROOT, "Pipfile.lock")) as f:
        locked = json.load(f)["default"]["tensorflow"]["version"]
    assert gpu == [f"tensorflow[and-cuda]{locked}"]
    assert metadata.version("tensorflow") == locked.removeprefix("==")  # the environment is the lock's
    cuda = [r for r in metadata.requires("tensorflow") if re.search(r"extra\s*==\s*[\"']and-cuda[\"']", r)]
    assert any(r.startswith("nvidia-cudnn") for r in cuda), cuda
