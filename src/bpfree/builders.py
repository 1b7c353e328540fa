"""Model builders as arch values: a search over a user's Keras model.

An arch value of the form ``"module:function"`` or ``"module:function(key=value,...)"`` names a function
that returns a built Keras model (Sequential or functional), called as

    function(input_shape, output_dim, **kwargs, [seed=...], [activation=..., batchnorm=..., dropout=...])

with the dataset's input shape (an image (H, W, C) or (features,)) and the number of classes (outputs).
The keyword arguments written in the arch value are the builder's hparams, so a grid over them is a list
of arch values (``arch = ["mymodels:mlp(width=128)", "mymodels:mlp(width=512)"]``). The grid point's
``seed`` is passed when the function takes a ``seed`` argument; otherwise Keras's global seed is set from
it before the call (`keras.utils.set_random_seed`), so the same point and seed build the same weights.
``activation``, ``batchnorm`` and ``dropout`` are passed when the function takes them; a grid that varies
one the function does not take is refused (the executions would be the same model).
The model is then trained by the point's rule through `bpfree.convert`.

Parsing and checking the value imports neither Keras nor the module (the command line refuses a
misspelled value before TensorFlow loads); `resolve` imports the module.
"""

import ast
import importlib
import inspect
import re

from bpfree.arch import check_length

_NAME = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_]\w*)(\((.*)\))?$", re.DOTALL)
POINT_OPTIONS = ("activation", "batchnorm", "dropout")
FORM = "'module:function' or 'module:function(key=value,...)' (e.g. 'bpfree.models.resnet:resnet20')"


def is_builder(arch):
    """Whether an arch value names a model builder rather than a layer string."""
    return isinstance(arch, str) and ":" in arch


def parse(arch):
    """(module, function, {key: value}) of a builder arch value; a ValueError naming it otherwise."""
    check_length(arch)  # before parsing: a megabyte of arguments takes seconds and memory to parse
    match = _NAME.match(arch.strip())
    if not match:
        raise ValueError(f"Invalid arch {arch!r}: a model builder is written {FORM}.")
    module, function, _, args = match.groups()
    kwargs = {}
    if args and args.strip():
        try:
            call = ast.parse(f"f({args})", mode="eval").body
            if call.args:
                raise ValueError("positional")
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            if None in kwargs:
                raise ValueError("**")
        except (SyntaxError, ValueError):
            raise ValueError(f"Invalid arch {arch!r}: a builder's arguments are key=value pairs of Python "
                             "literals (numbers, strings, booleans, lists), e.g. 'mymodels:mlp(width=128,depth=2)'.") from None
    taken = sorted(set(kwargs) & {*POINT_OPTIONS, "seed"})
    if taken:
        raise ValueError(f"Invalid arch {arch!r}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} set by the grid "
                         "point (its hparam, or its execution's seed), not in the arch value.")
    return module, function, kwargs


def canonical(arch):
    """The spelling records and trial ids use: no spaces, arguments sorted by name."""
    module, function, kwargs = parse(arch)
    args = ",".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return f"{module}:{function}" + (f"({args})" if args else "")


def resolve(arch):
    """The builder function of an arch value (its module imported)."""
    module, function, _ = parse(arch)
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"Invalid arch {arch!r}: module {module!r} cannot be imported ({e}).") from None
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise ValueError(f"Invalid arch {arch!r}: module {module!r} has no function {function!r}.")
    return fn


def accepts(fn, name):
    """Whether `fn` takes a keyword argument `name` (or **kwargs)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_varied(arch, varied):
    """Refuses a grid that varies point options (activation, ...) the builder of `arch` does not take."""
    fn = resolve(arch)
    missing = [name for name in POINT_OPTIONS if name in varied and not accepts(fn, name)]
    if missing:
        raise ValueError(f"Invalid search space: {' and '.join(missing)} take{'s' if len(missing) == 1 else ''} several "
                         f"values but the builder of arch {arch!r} has no such argument, so those executions would "
                         f"train the same model; fix {'it' if len(missing) == 1 else 'them'} to one value "
                         f"({' '.join(f'--{name}=VALUE' for name in missing)}) or give the builder the argument.")


def build(arch, input_shape, output_dim, *, seed, **point_options):
    """The Keras model `arch` builds for inputs of `input_shape` and `output_dim` outputs (see the module
    docstring); a ValueError naming the arch when it does not return a built Keras model."""
    import keras  # deferred: see the module docstring

    fn = resolve(arch)
    _, _, kwargs = parse(arch)
    kwargs.update({k: v for k, v in point_options.items() if k in POINT_OPTIONS and accepts(fn, k)})
    if accepts(fn, "seed"):
        kwargs["seed"] = int(seed)
    else:
        keras.utils.set_random_seed(int(seed))
    model = fn(tuple(input_shape), int(output_dim), **kwargs)
    if not isinstance(model, keras.Model):
        raise ValueError(f"Invalid arch {arch!r}: its builder returned {type(model).__name__}, not a keras.Model.")
    return model


def parameter_count(arch, input_shape, output_dim, seed=0):
    """The weights of the model `arch` builds (its trainable and non-trainable variables)."""
    return int(build(arch, input_shape, output_dim, seed=seed).count_params())
