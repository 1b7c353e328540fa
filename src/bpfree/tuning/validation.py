"""Bad input is refused before anything trains: every grid point, the data it leaves, the environment.

`validate_points` runs before the search takes its lock (and before `--workers` starts any process);
each check raises a ValueError whose one-line message names the bad value and the valid ones, which
the CLI prints as `error: …` with exit code 2. A rule checks its own hparams in its constructor and
its model class checks the rest (`bpfree.models.check_options`): nothing is built.
"""

import math
import os
import re
import subprocess

from bpfree import builders
from bpfree.arch import ConvSpec, input_shape, is_conv, parse_layers
from bpfree.tuning import inputs

# keras-tuner uses KERASTUNER_TUNER_ID as a directory name, which it deletes first (overwrite=True).
TUNER_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
BYTES_PER_NUMBER = 4  # float32 weights
OPTIMIZER_SLOTS = {"adam": 2, "torch_adam": 2, "uncorrected_adam": 2, "sgd": 0}


def validate_points(points, config, meta=None):
    """Every grid point is a valid network for this search (e.g. no drtp with reconstruction, square
    archs for invertible rules, rule hparams in their ranges, convolutions only on images) that fits in
    this machine's memory, and the data leaves examples to train on; checked before anything trains,
    without building a model. Each point is checked with the input_dim its arch gets
    (`bpfree.tuning.inputs.input_dim`: the image shape for a conv arch, the number of features otherwise)."""
    from bpfree import models, rules  # deferred: Keras; `check_environment` runs before the CLI loads it

    meta = meta or config.dataset_info()
    output_dim = meta.num_classes if config.problem_type == "classification" else meta.features
    check_training_data(config, meta)
    memory = memory_bytes()
    seen, sized = set(), set()
    varied = {name for name in builders.POINT_OPTIONS if len({p[name] for p in points}) > 1}
    for p in points:
        check_point_strings(p)
        if builders.is_builder(p["arch"]):
            if p["arch"] not in sized:
                sized.add(p["arch"])
                check_builder(p, config, meta, output_dim, varied, memory)
            continue
        hparams = {k: p[k] for k in rules.rule_class(p["algorithm"]).hparams() if k in p}
        key = (p["algorithm"], p["arch"], p["activation"], p["batchnorm"], p["dropout"], p["bw_init"],
               tuple(sorted(hparams.items(), key=lambda kv: kv[0])))
        if key in seen:
            continue
        seen.add(key)
        if config.problem_type == "reconstruction" and is_conv(p["arch"]):
            raise ValueError(f"Invalid arch {p['arch']!r} for problem_type 'reconstruction': a conv net's output is "
                             "flat and its target an image; valid: a dense arch (e.g. 500-500).")
        rule = rules.get(p["algorithm"], **hparams)  # the rule's constructor checks its hparams' ranges
        input_dim = inputs.input_dim(p["arch"], meta.input_shape, config.dataset)  # conv archs need images
        models.check_options(rule, p["arch"], input_dim, output_dim, activation=p["activation"],
                             batchnorm=p["batchnorm"], dropout=p["dropout"], bw_init=p["bw_init"],
                             use_bias=config.use_bias, weight_decay=config.weight_decay,
                             problem_type=config.problem_type, trackers=config.trackers)
        if (p["algorithm"], p["arch"]) not in sized:
            sized.add((p["algorithm"], p["arch"]))
            check_memory(p, config, input_dim, output_dim, memory)


def check_builder(point, config, meta, output_dim, varied, memory):
    """A builder's arch (`bpfree.builders`): the search settings it honours, its model built and converted for
    the point's rule (the conversion's refusals name the layer), its weights within this machine's memory."""
    from bpfree.tuning.point_model import point_model

    arch = point["arch"]
    for name, value, default in (("weight_decay", config.weight_decay, 0.0), ("use_bias", config.use_bias, True)):
        if value != default:
            raise ValueError(f"Invalid {name} {value!r} for arch {arch!r}: it applies to arch-string networks only "
                             f"(valid: {default!r}); a builder's layers carry their own regularizers and biases.")
    builders.check_varied(arch, varied)
    model = point_model(point, config, meta.input_shape, output_dim, config.seed)
    count = model.count_params()
    check_memory(point, config, None, output_dim, memory, count=count)


def check_point_strings(point):
    """String values become directory names (trial ids): no '/' or NUL, not '.' or '..'."""
    for name, value in point.items():
        if isinstance(value, str) and ("/" in value or "\0" in value or value in (".", "..")):
            raise ValueError(f"Invalid {name} {value!r}: no '/' or NUL, not '.' or '..'.")


def parameter_count(arch, input_dim, output_dim, use_bias=True):
    """Weights of the stack input → arch → output (feedback matrices and inverses not counted): a
    convolution k·k·C_in·C_out (+ C_out biases) on image inputs (H, W, C), a dense layer n_in·n_out
    (+ n_out), the feature map flattened (`ConvSpec.output_shape`) where the first dense layer reads it."""
    shape = input_shape(input_dim)
    count = 0
    for block in (*parse_layers(arch), int(output_dim)):
        if isinstance(block, ConvSpec):
            if len(shape) != 3:
                raise ValueError(f"Invalid input_dim {input_dim!r} for a convolution: expected an image shape "
                                 "(height, width, channels).")
            count += block.kernel ** 2 * shape[2] * block.filters + (block.filters if use_bias else 0)
            shape = block.output_shape(shape)
        else:
            count += math.prod(shape) * block + (block if use_bias else 0)
            shape = (block,)
    return count


def memory_bytes():
    """(bytes, what) of the memory a model must fit in: this machine's (physical, or the container's
    limit when lower), or its smallest GPU's when TensorFlow sees GPUs (weights live there); None if unknown."""
    limits = []
    try:
        limits.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine has"))
    except (AttributeError, OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append((int(text), "this container may use"))
    gpu = gpu_memory_bytes()
    if gpu:
        limits.append((gpu, "its GPU has"))
    return min(limits) if limits else None


def gpu_memory_bytes():
    """The total memory of the smallest GPU (nvidia-smi) when TensorFlow sees one; None otherwise."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    sizes = [int(v) * 2**20 for v in out.split() if v.isdigit()]  # MiB
    return min(sizes) if sizes else None


def check_memory(point, config, input_dim, output_dim, memory=None, count=None):
    """Refuses a point whose weights, gradients and optimizer state alone exceed this machine's memory:
    a lower bound, so only clearly impossible networks (arch 10000000-10000000) are refused."""
    memory = memory_bytes() if memory is None else memory
    if not memory:
        return
    available, where = memory
    count = parameter_count(point["arch"], input_dim, output_dim, config.use_bias) if count is None else count
    needed = count * BYTES_PER_NUMBER * (2 + OPTIMIZER_SLOTS.get(config.optimizer, 2))
    if needed > available:
        raise ValueError(
            f"Grid point {point['algorithm']} arch {point['arch']} cannot be allocated: its {count} parameters "
            f"need at least {needed} bytes ({needed / 2**30:.3g} GiB) with their gradients and {config.optimizer} "
            f"state, and {where} {available} bytes ({available / 2**30:.3g} GiB); valid: narrower or fewer layers.")


def check_training_data(config, meta):
    """Refuses a validation_frac whose carve-out (stratified, at least one example of each class) leaves
    no training example, estimated from the training split's size with balanced classes."""
    n = (meta.splits or {}).get("train")
    if not n or not config.validation_frac:
        return
    per_class = n / meta.num_classes
    carved = max(1, round(config.validation_frac * per_class))
    if per_class - carved < 1:
        whole = math.floor(per_class)
        limit = (whole - 0.5) / per_class if whole >= 2 else 0.0
        valid = f"below {limit:.4g}" if limit > 0 else "0 (the test split validates)"
        raise ValueError(
            f"Invalid validation_frac {config.validation_frac!r} for {config.dataset!r}: it carves about {carved} of "
            f"the ~{per_class:.4g} training examples of each of its {meta.num_classes} classes ({n} in all), "
            f"leaving none to train on; valid: {valid}.")


def check_environment(environ=None):
    """keras-tuner's variables: KERASTUNER_TUNER_ID a plain name (keras-tuner deletes the directory it
    names), KERASTUNER_ORACLE_PORT a port number."""
    environ = os.environ if environ is None else environ
    tuner_id = environ.get("KERASTUNER_TUNER_ID")
    if tuner_id is not None and (not TUNER_ID.fullmatch(tuner_id) or tuner_id in (".", "..")):
        raise ValueError(f"Invalid KERASTUNER_TUNER_ID {tuner_id!r}: a plain name of up to 100 letters, digits, "
                         "'_', '.' and '-' (e.g. chief, worker0), not '.' or '..'.")
    port = environ.get("KERASTUNER_ORACLE_PORT")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"Invalid KERASTUNER_ORACLE_PORT {port!r}: a port number in [1, 65535].")
