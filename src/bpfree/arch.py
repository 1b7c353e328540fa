"""The arch string and the problem types: what every model, rule and search reads the same way.

An arch is a stack of hidden layers, tokens joined by '-':

- ``<units>`` or ``fc<units>``: a dense (fully connected) layer ("500-1000-500");
- ``conv<filters>k<kernel>[s<stride>][v]``: a 2-D convolution with 'same' padding ("conv32k5", "conv64k3s2"),
  or with 'valid' padding (no zeros added: H → ⌊(H − k)/s⌋ + 1) when it ends in ``v`` ("conv6k5v",
  "conv6k5s1v");
- ``pool<size>``: max pooling, ``avgpool<size>``: average pooling (window = stride = size).

Convolutions and poolings come first, dense layers after (the feature map is flattened once, before
the first dense layer or the output layer); a pooling follows a convolution and belongs to its block
(the block's activity h_l is the pooled map). LeNet-5 is "conv6k5-pool2-conv16k5-pool2-120-84"; biotorch's
LeNet on 32×32 inputs is "conv6k5v-pool2-conv16k5v-pool2-conv120k5v-84" (32 → 28 → 14 → 10 → 5 → 1).

`parse_arch` keeps what a dense network needs, its widths; `parse_layers` gives the blocks of any arch:
an int per dense layer and a `ConvSpec` per convolution, so a dense arch parses to the same tuple of
widths either way.

A problem is a classification (softmax output, cross-entropy) or a reconstruction (tanh or sigmoid
output, MSE).
"""

import dataclasses
import math
import re

from bpfree import checks

PROBLEM_TYPES = ("classification", "reconstruction")
# The output activations a problem allows; the first is its default.
OUTPUT_ACTIVATIONS = {"classification": ("softmax",), "reconstruction": ("tanh", "sigmoid")}
TOKEN_FORMS = "<units>, fc<units>, conv<filters>k<kernel>[s<stride>][v] (v: 'valid' padding), pool<size>, avgpool<size>"
POOLS = {"pool": "max", "avgpool": "average"}
# An arch value longer than this (a layer string or a model builder's call) or of more tokens (layers and
# poolings) is refused unparsed: real networks are a few dozen characters and at most a few dozen layers
# (deeper ones, such as ResNets, are model builders), and a huge one only exhausts memory or time.
MAX_ARCH_CHARS = 1000
MAX_ARCH_TOKENS = 64

_TOKENS = (
    ("dense", re.compile(r"(?:fc)?(\d+)")),
    ("conv", re.compile(r"conv(\d+)k(\d+)(?:s(\d+))?(v)?")),
    ("pool", re.compile(r"(avgpool|pool)(\d+)")),
)


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A convolution block: ``filters`` kernels of ``kernel``×``kernel``, ``stride``, ``padding`` ("same"
    or "valid"), followed by the poolings ``pools`` (("max" | "average", size), ...)."""

    filters: int
    kernel: int
    stride: int = 1
    pools: tuple = ()
    padding: str = "same"

    def __str__(self):
        tokens = [f"conv{self.filters}k{self.kernel}" + (f"s{self.stride}" if self.stride != 1 else "")
                  + ("v" if self.padding == "valid" else "")]
        tokens += [("pool" if kind == "max" else "avgpool") + str(size) for kind, size in self.pools]
        return "-".join(tokens)

    def output_shape(self, shape):
        """(H, W, C) → the block's output shape (the convolution: ⌈H/s⌉ 'same', ⌊(H − k)/s⌋ + 1 'valid';
        then 'valid' poolings)."""
        if self.padding == "valid":
            if min(shape[:2]) < self.kernel:
                raise ValueError(f"Invalid arch token {str(self).split('-')[0]!r} on a {shape[0]}×{shape[1]} map: a "
                                 f"'valid' {self.kernel}×{self.kernel} convolution needs a map of at least that size.")
            h, w = ((d - self.kernel) // self.stride + 1 for d in shape[:2])
        else:
            # Beyond 2·H − 1 a 'same' kernel's outer taps only ever see padding (and TensorFlow aborts on
            # far larger ones instead of raising).
            if self.kernel > 2 * max(shape[:2]) - 1:
                raise ValueError(f"Invalid arch token {str(self).split('-')[0]!r} on a {shape[0]}×{shape[1]} map: a "
                                 f"{self.kernel}×{self.kernel} kernel is larger than the map can use (at most "
                                 f"{2 * max(shape[:2]) - 1}: 2 × the map's size − 1).")
            h, w = math.ceil(shape[0] / self.stride), math.ceil(shape[1] / self.stride)
        for _, size in self.pools:
            h, w = h // size, w // size
        return (h, w, self.filters)


def _invalid(arch, why):
    return ValueError(f"Invalid arch {arch!r}: {why}. Valid tokens, joined by '-': {TOKEN_FORMS} "
                      "(convolutions and poolings before dense layers), e.g. '500-500' or "
                      "'conv6k5-pool2-conv16k5-pool2-120-84'.")


def parse_layers(arch):
    """An arch string (or a sequence of widths / `ConvSpec`s) → its hidden blocks: an int per dense
    layer, a `ConvSpec` per convolution (with the poolings that follow it)."""
    if not isinstance(arch, str):
        try:
            items = tuple(arch)
        except TypeError:
            raise _invalid(arch, "not a string or a sequence") from None
        arch = "-".join(str(int(a)) if not isinstance(a, ConvSpec) and _is_int(a) else str(a) for a in items)
    check_length(arch)
    text = arch.strip()
    if not text:
        raise _invalid(arch, "no layers")
    tokens = text.split("-")
    if len(tokens) > MAX_ARCH_TOKENS:
        raise ValueError(f"Invalid arch {_shown(arch)}: {len(tokens)} layers; at most {MAX_ARCH_TOKENS} layers and "
                         "poolings (a deeper network is a model builder, 'module:function(...)').")
    blocks = []
    for token in tokens:
        kind, match = next(((k, m) for k, p in _TOKENS if (m := p.fullmatch(token))), (None, None))
        if kind is None:
            raise _invalid(arch, f"unknown token {token!r}")
        numbers = [int(g) for g in match.groups() if g is not None and g.isdigit()]
        if any(n <= 0 for n in numbers):
            raise _invalid(arch, f"{token!r} needs positive numbers")
        if kind == "dense":
            blocks.append(numbers[0])
        elif blocks and any(isinstance(b, int) for b in blocks):
            raise _invalid(arch, f"{token!r} comes after a dense layer")
        elif kind == "conv":
            blocks.append(ConvSpec(numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 1,
                                   padding="valid" if match.group(4) else "same"))
        elif not blocks:
            raise _invalid(arch, f"{token!r} does not follow a convolution")
        else:
            last = blocks[-1]
            blocks[-1] = dataclasses.replace(last, pools=last.pools + ((POOLS[match.group(1)], numbers[0]),))
    return tuple(blocks)


def check_length(arch):
    """Refuses an arch value (layer string or model builder) longer than MAX_ARCH_CHARS, before parsing it."""
    if isinstance(arch, str) and len(arch) > MAX_ARCH_CHARS:
        raise ValueError(f"Invalid arch {_shown(arch)}: {len(arch)} characters; at most {MAX_ARCH_CHARS}.")


def _shown(arch, limit=60):
    """An arch value as an error message shows it: quoted, cut to `limit` characters."""
    return repr(arch) if len(arch) <= limit else repr(arch[:limit]) + "…"


def _is_int(value):
    try:
        return int(value) == value
    except (TypeError, ValueError):
        return False


def is_conv(arch):
    """Whether the arch has convolutions (and so needs image-shaped inputs)."""
    return any(isinstance(b, ConvSpec) for b in parse_layers(arch))


def parse_arch(arch, owner=None):
    """"500-1000-500" (or a sequence of ints) → (500, 1000, 500): the hidden widths of a dense network.
    An arch with convolutions is refused (naming `owner`, the model or rule that needs a dense one)."""
    blocks = parse_layers(arch)
    if any(isinstance(b, ConvSpec) for b in blocks):
        who = f"{owner} trains" if owner else "this needs"
        raise ValueError(f"Invalid arch {arch_string(blocks)!r}: {who} fully connected networks only "
                         "(an arch of dense widths like '500-500'; no conv/pool tokens).")
    return blocks


def arch_string(arch):
    """(500, 1000, 500) or "500-1000-500" → "500-1000-500" (the one spelling records and configs use)."""
    return "-".join(str(b) for b in parse_layers(arch))


def input_shape(input_dim):
    """`input_dim` as a shape: an int n → (n,), an image (H, W, C) → (H, W, C); refuses anything else."""
    shape = (input_dim,) if _is_int(input_dim) else tuple(input_dim) if isinstance(input_dim, (tuple, list)) else None
    if shape is None or len(shape) not in (1, 3) or not all(_is_int(d) and int(d) > 0 for d in shape):
        raise ValueError(f"Invalid input_dim {input_dim!r}: expected a positive number of features or an "
                         "image shape (height, width, channels).")
    return tuple(int(d) for d in shape)


def check_problem_type(problem_type, error=ValueError):
    """`problem_type` if it is one of PROBLEM_TYPES; `error` naming the valid ones otherwise."""
    return checks.choice("problem_type", problem_type, PROBLEM_TYPES, error=error)


def output_activation(problem_type, output_activation=None):
    """The output activation of a problem: `output_activation` if the problem allows it, its default if None."""
    check_problem_type(problem_type)
    valid = OUTPUT_ACTIVATIONS[problem_type]
    if output_activation is None:
        return valid[0]
    return checks.choice(f"output_activation for {problem_type}", output_activation, valid, label="Invalid")
