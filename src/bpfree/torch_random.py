"""The numbers PyTorch's CPU generator draws, for initial values that must equal a PyTorch seed project's.

`torch.manual_seed(s)` seeds a 32-bit Mersenne Twister (MT19937) with the reference initialisation
`init_genrand(s)`; numpy's legacy `RandomState(s)` is the same generator seeded the same way, so its raw
32-bit words are torch's. A float32 `Tensor.uniform_(a, b)` on the CPU turns each word w, one per
element in row-major order, into

    u = (w mod 2^24) · 2^-24 ∈ [0, 1),   x = u · (b − a) + a      (in float32).

So `uniform(s, n, a, b)` is `torch.manual_seed(s); torch.empty(n).uniform_(a, b)`, and the weight of
`torch.nn.Linear(fan_in, out)` built first after the seed is `linear_kernel(s, fan_in, out)` (its
default init draws U(−1/√fan_in, 1/√fan_in), the bound computed as kaiming_uniform_(a=√5) does).
"""

import math

import numpy as np

_MANTISSA = 24  # float32


def uniform(seed, count, low=0.0, high=1.0):
    """float32 (count,): what `torch.manual_seed(seed); torch.empty(count).uniform_(low, high)` holds."""
    words = np.random.RandomState(int(seed)).randint(0, 2**32, size=int(count), dtype=np.uint32)
    u = (words & np.uint32(2**_MANTISSA - 1)).astype(np.float32) * np.float32(2.0**-_MANTISSA)
    low, high = np.float32(low), np.float32(high)
    return u * (high - low) + low


def linear_bound(fan_in):
    """The bound of `torch.nn.Linear`'s default kernel init: kaiming_uniform_(a=√5) = gain·√(3/fan_in)."""
    gain = math.sqrt(2.0 / (1 + 5))
    return math.sqrt(3.0) * gain / math.sqrt(fan_in)


def linear_kernel(seed, fan_in, units):
    """The Keras kernel (fan_in, units) of the first `torch.nn.Linear(fan_in, units)` built after
    `torch.manual_seed(seed)`: torch's weight (units, fan_in), transposed."""
    bound = linear_bound(fan_in)
    return uniform(seed, units * fan_in, -bound, bound).reshape(units, fan_in).T
