"""Prototype for issue 22: M executions of one structure trained in the same kernels (a member axis).

    PYTHONPATH=src python bench/member_axis.py [--net dense|conv] [--dataset digits] [--members 1,4,16,64]
        [--rules dfa,bp] [--reps 3] [--baseline-max 16] [--group-max 4] [--unroll] [--vmap]
        [--conv grouped|patches] [--skip-exact] [--skip-speed]

Method. Nets: dense in-256-256-10, conv ``conv16k3-pool2-128`` (digits 8×8×1); tanh, softmax CE, batch
64, rules bp and dfa. Every variable has a leading member axis: kernels (M, in, out) / (M, k, k, C, F),
biases (M, out), DFA feedback B_l (M, units, 10), lrs (M,), optimizer slots. A step gathers x (M, B, ...)
by per-member rows of `epoch_permutation(n, seed_m, epoch)` (as the pipeline draws them); dense layers
are ``einsum('mbi,mio->mbo')``, the conv a grouped conv2d (members folded into channels), im2col +
einsum (``patches``) or `tf.vectorized_map` (``vmap``); the surrogate as bpfree writes it (DFA:
detached block inputs, z + s − stop_gradient(s), s = Σ_l h_l B_l); Σ_m of per-member mean losses (each
member's gradient is its own); one `GradientTape` gradient; Keras's SGD / Adam equations with the lr
vector broadcast. Members start from the variables of ``bpfree.build_model(rule, arch, ..., seed=s)``.
Exactness: member m after 5 steps vs that model stepped alone by its compiled ``train_step`` on the
same batches. Speed: one epoch per call (a ``tf.while_loop`` over the step, ceil(n/64) steps) for the
member axis (XLA, no XLA, [M matmuls unrolled in one XLA program, vmap, im2col conv]), (a) the M bpfree
models one after another, each its own compiled epoch, (b) the engine's `MemberProgram` (issue 22; the
recorded run below measured the GroupProgram it replaced); variants
built first, then timed interleaved with the order rotated, 3 reps, SGD.

Recorded run, 2026-12-07 00:13–00:28 UTC: 2-core AMD EPYC (AVX-512, 2.6 GHz), TF 2.21, CPU only, load
average 3–5 from others' jobs. CPU time ≈ wall in every row: every variant ran on one thread.
-----------------------------------------------------------------------------------------------------
Exactness, digits, 4 members (lr 0.1, 0.01, 0.001, 0.1), 5 steps: normwise max|Δ|/max|w| / bitwise /
elements outside isclose(rtol 1e-5, atol 1e-7); "scale" = bpfree alone no-XLA vs bpfree alone XLA.

| net, rule, opt         | member vs alone, XLA | member vs alone, no XLA | scale               |
| dense dfa sgd / adam   | 0 bitwise / 0 bitwise | 2.7e-7, 0 / 2.4e-3, 25055 | 2.4e-7, 0 / 2.0e-3, 23303 |
| dense bp  sgd / adam   | 0 bitwise / 0 bitwise | 3.9e-7, 0 / 6.6e-4, 16593 | 3.9e-7, 0 / 8.2e-4, 26232 |
| conv grouped dfa s / a | 3.5e-7, 0 / 6.1e-5, 651  | 8.4e-7, 0 / 1.2e-4, 3146 | 3.2e-7, 0 / 1.2e-4, 4986 |
| conv grouped bp  s / a | 3.3e-7, 0 / 5.7e-5, 1605 | 4.0e-7, 0 / 2.1e-4, 4676 | 4.0e-7, 0 / 1.3e-4, 5034 |
| conv im2col dfa  s / a | 2.5e-7, 0 / 1.8e-4, 5177 | 7.9e-7, 0 / 8.9e-5, 2936 |                    |
| conv im2col bp   s / a | 4.5e-7, 0 / 9.9e-5, 3802 | 4.6e-7, 0 / 1.7e-4, 4120 |                    |
One-off checks (scripts not kept): dense dfa SGD, 3 members, a whole epoch (23 steps, short last batch)
through the timed epoch functions: bitwise equal to the models alone (XLA). Conv dfa, the member
program at M=4 vs the same program at M=1: im2col under XLA bitwise (SGD and Adam); grouped conv, and
everything without XLA, not (SGD ≤ 4e-7, Adam 5e-5–8e-5).

Speed, CPU ms per member-step, median (min) of 3. Dense digits (1437 × 64), ``--unroll --group-max 16``
(run 2: my epoch check ran beside its dfa M=16 rows):
| rule | M | member XLA | member no-XLA | unrolled XLA | (a) alone XLA | (b) Group XLA |
| dfa | 1 | 0.326 (0.310) | 0.724 (0.717) | 0.286 (0.268) | 0.281 (0.254) | 0.326 (0.313) |
| dfa | 4 | 0.183 (0.180) | 0.366 (0.361) | 0.199 (0.197) | 0.282 (0.279) | 0.229 (0.225) |
| dfa | 16 | 0.207 (0.194) | 0.389 (0.389) | 0.252 (0.250) | 0.329 (0.313) | 0.314 (0.268) |
| dfa | 64 | 0.218 (0.215) | 0.354 (0.350) | 0.297 (0.282) |  |  |
| bp | 1 | 0.467 (0.447) | 0.805 (0.795) | 0.447 (0.411) | 0.364 (0.354) | 0.463 (0.454) |
| bp | 4 | 0.231 (0.230) | 0.388 (0.384) | 0.241 (0.238) | 0.368 (0.349) | 0.282 (0.275) |
| bp | 16 | 0.290 (0.218) | 0.443 (0.349) | 0.362 (0.357) | 0.414 (0.411) | 0.378 (0.284) |
| bp | 64 | 0.308 (0.304) | 0.404 (0.397) | 0.360 (0.323) |  |  |
Run 1 (same, no --unroll), M = 1/4/16/64, member XLA | alone | Group: dfa 0.327/0.180/0.150/0.190 |
0.284/0.278/0.268 | 0.317/0.236/0.195; bp 0.430/0.239/0.191/0.260 | 0.317/0.365/0.334 | 0.414/0.278/0.238.
MNIST-shaped (784-256-256-10, ``--dataset mnist --examples_frac 0.1 --rules dfa --unroll --members
1,16,64 --group-max 1``, BPFREE_DATA_DIR=/work/shared/data, 5999 examples), dfa, same columns:
M=1: 0.706 (0.665) | 1.175 (1.123) | 0.624 (0.598) | 0.558 (0.540) | 0.666 (0.631);
M=16: 0.654 (0.597) | 1.057 (0.987) | 0.775 (0.774) | 0.605 (0.593);  M=64: 0.585 (0.574) | 0.943 | 0.785.
Conv digits, ``--net conv --vmap --members 1,4,16`` (member = grouped conv2d):
| rule | M | member XLA | member no-XLA | vmap no-XLA | im2col XLA | (a) alone XLA | (b) Group XLA |
| dfa | 1 | 0.834 (0.809) | 1.072 (1.050) | 1.024 (1.012) | 0.904 (0.900) | 0.828 (0.820) | 1.548 (1.544) |
| dfa | 4 | 2.551 (2.501) | 0.494 (0.480) | 0.587 (0.586) | 0.729 (0.712) | 0.818 (0.787) | 1.463 (1.419) |
| dfa | 16 | 7.409 (7.326) | 0.327 (0.310) | 0.520 (0.505) | 0.844 (0.830) | 0.870 (0.860) |  |
| bp | 1 | 0.876 (0.850) | 1.074 (1.072) | 1.029 (1.002) | 0.903 (0.891) | 0.859 (0.844) | 1.590 (1.576) |
| bp | 4 | 2.615 (2.591) | 0.548 (0.532) | 0.642 (0.626) | 0.790 (0.779) | 0.855 (0.855) | 1.527 (1.525) |
| bp | 16 | 7.318 (7.306) | 0.304 (0.304) | 0.491 (0.487) | 0.845 (0.840) | 0.803 (0.798) |  |
First call (trace + XLA compile + 1 epoch), s, M=16: member XLA 1.1–1.9 (2.3–2.6 at M=64), no XLA
0.4–0.7; (a) 13–17 dense, 24 conv, 31 MNIST; (b) 5–7; unrolled 4 (14–18 at M=64); conv XLA grouped 5–6,
im2col 2. vmap: pfor converts Conv2D only for a per-member input, not filter, and falls back to a
tf.while_loop silently (TF 2.21 logs it at DEBUG, no warning); under XLA that loop does not compile
("XLA compilation requires a fixed tensor list size").

Reading. Dense under XLA: bitwise. Conv member ops vs Keras' Conv2D, and anything across XLA / no XLA:
SGD ≤ 1e-6, Adam not within rtol 1e-5 (bpfree's own XLA-vs-graph difference is as large). Dense dfa ≈ 23
MFLOP per member-step, bp ≈ 30: 0.150 / 0.191 ms is 150–160 GFLOP/s on one core, about its peak, so the
member axis runs at its arithmetic here (1.5–1.8× alone on digits, ~1× on the MNIST-shaped net).
"""

import argparse
import os
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras
import numpy as np
import tensorflow as tf

import bpfree
from bpfree.datasets.pipeline import epoch_permutation

ARCHS = {"dense": "256-256", "conv": "conv16k3-pool2-128"}  # the conv net: digits' 8×8×1 images
CLASSES = 10
BATCH = 64
ADAM = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7)  # Keras defaults, written out below


def reference_model(rule, input_shape, seed, lr, optimizer):
    """The bpfree execution trained alone: its model, compiled like the engine's (default loss)."""
    arch = ARCHS["conv" if len(input_shape) == 3 else "dense"]
    model = bpfree.build_model(rule, arch, input_shape if len(input_shape) == 3 else input_shape[0], CLASSES,
                               activation="tanh", seed=seed)
    opt = keras.optimizers.SGD(lr) if optimizer == "sgd" else keras.optimizers.Adam(lr, **ADAM)
    model.compile(optimizer=opt)
    model.optimizer.build(model.trainable_variables)
    return model


class MemberNet:
    """M members of one structure (dense, or conv then dense), every variable stacked on a member axis."""

    def __init__(self, rule, models, lrs, optimizer, jit_compile, conv="grouped", unroll=False):
        self.rule, self.optimizer, self.M, self.conv, self.unroll = rule, optimizer, len(models), conv, unroll
        stack = lambda vs: tf.Variable(np.stack([v.numpy() for v in vs]))  # noqa: E731
        # Trainable: [W1, b1, W2, b2, W3, b3] in the bpfree models' order (W1 (M, k, k, C, F) on the conv net).
        self.params = [stack(vs) for vs in zip(*[m.trainable_variables for m in models])]
        self.hidden = len(self.params) // 2 - 1
        self.feedback = ([stack([m.projections[l].feedback for m in models]) for l in range(self.hidden)]
                         if rule == "dfa" else [])
        self.lr = tf.Variable(np.asarray(lrs, np.float32))
        self.slots = [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in self.params]
        self.iterations = tf.Variable(0, dtype=tf.int64)
        self.step = tf.function(self._step, jit_compile=jit_compile, autograph=False, reduce_retracing=True)

    def objective(self, x, y):
        """Σ_m mean_b CE_m of the rule's surrogate (the value is Σ_m of each member's loss)."""
        detach = self.rule == "dfa"
        h, hidden = x, []
        p = self.params
        for l in range(self.hidden):
            h_in = tf.stop_gradient(h) if detach else h
            if len(p[2 * l].shape) == 5:  # conv16k3 'same' → tanh → 2×2 max pool, flattened (M, B, H·W·F)
                a = member_conv(h_in, p[2 * l], self.conv) + p[2 * l + 1][:, None, None, None, :]
                s = tf.shape(a)
                pooled = tf.nn.max_pool2d(tf.reshape(tf.tanh(a), tf.concat([[-1], s[2:]], 0)), 2, 2, "VALID")
                h = tf.reshape(pooled, [self.M, s[1], -1])
            else:
                h = tf.tanh(self.matmul(h_in, p[2 * l]) + p[2 * l + 1][:, None, :])
            hidden.append(h)
        h_in = tf.stop_gradient(h) if detach else h
        z = self.matmul(h_in, p[-2]) + p[-1][:, None, :]
        if detach:  # bpfree.rules.dfa.broadcast_output_error, per member
            s = tf.add_n([tf.einsum("mbu,muo->mbo", h, B) for h, B in zip(hidden, self.feedback)])
            z = z + (s - tf.stop_gradient(s))
        ce = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z)  # Keras' path for softmax outputs
        return tf.reduce_sum(tf.reduce_mean(ce, axis=1))

    def matmul(self, h, w):
        """(M, B, in) × (M, in, out): one batched matmul, or (``unroll``) M matmuls in the same program."""
        if self.unroll:
            return tf.stack([tf.matmul(a, b) for a, b in zip(tf.unstack(h, self.M), tf.unstack(w, self.M))])
        return tf.einsum("mbi,mio->mbo", h, w)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.objective(x, y)
        grads = tape.gradient(loss, self.params)
        with tf.control_dependencies(grads):  # every gradient before any update
            step = tf.cast(self.iterations + 1, tf.float32)
            for var, g, (m, v) in zip(self.params, grads, self.slots):
                lr = tf.reshape(self.lr, (-1,) + (1,) * (len(var.shape) - 1))
                if self.optimizer == "sgd":  # keras SGD, momentum 0
                    var.assign_sub(lr * g)
                    continue
                b1, b2, eps = ADAM["beta_1"], ADAM["beta_2"], ADAM["epsilon"]  # keras Adam.update_step
                alpha = lr * tf.sqrt(1 - tf.pow(b2, step)) / (1 - tf.pow(b1, step))
                m.assign_add((g - m) * (1 - b1))
                v.assign_add((tf.square(g) - v) * (1 - b2))
                var.assign_sub(alpha * m / (tf.sqrt(v) + eps))
            self.iterations.assign_add(1)
        return loss


def member_conv(x, kernel, how):
    """Per-member 'same' convolution: x (M, B, H, W, C), kernel (M, k, k, C, F) → (M, B, H, W, F).
    ``grouped``: the members folded into channels, (B, H, W, M·C), one grouped conv2d (groups = M);
    ``vmap``: `tf.vectorized_map` of conv2d over the member axis; ``patches``: im2col (the k×k×C
    patches, (kh, kw, c) order as the kernel's) and one batched matmul ``einsum('mnp,mpf->mnf')``."""
    if how == "vmap":
        return tf.vectorized_map(lambda a: tf.nn.conv2d(a[0], a[1], 1, "SAME"), (x, kernel))
    M, k, C, F = kernel.shape[0], kernel.shape[1], kernel.shape[3], kernel.shape[4]
    s = tf.shape(x)
    if how == "patches":
        p = tf.image.extract_patches(tf.reshape(x, tf.concat([[-1], s[2:]], 0)), [1, k, k, 1], [1, 1, 1, 1],
                                     [1, 1, 1, 1], "SAME")
        y = tf.einsum("mnp,mpf->mnf", tf.reshape(p, [M, -1, k * k * C]), tf.reshape(kernel, [M, k * k * C, F]))
        return tf.reshape(y, tf.stack([M, s[1], s[2], s[3], F]))
    xf = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), tf.stack([s[1], s[2], s[3], M * C]))
    kf = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [k, k, C, M * F])  # out channel m·F + f
    y = tf.nn.conv2d(xf, kf, 1, "SAME")
    return tf.transpose(tf.reshape(y, tf.stack([s[1], s[2], s[3], M, F])), [3, 0, 1, 2, 4])


def epoch_function(step, n, steps):
    """A tf.function running `steps` calls of `step(index_batch)` over index rows `perms` (K, n), batch i =
    perms[:, iB:(i+1)B] (the short last batch included), in one tf.while_loop (as GroupProgram does)."""
    def run(perms):
        def body(i):
            out = step(perms[:, i * BATCH:tf.minimum((i + 1) * BATCH, n)])
            with tf.control_dependencies(tf.nest.flatten(out)):
                return i + 1
        return tf.while_loop(lambda i: i < steps, body, (tf.constant(0),))
    return tf.function(run, autograph=False)


def permutations(n, seeds, epoch):
    return tf.stack([epoch_permutation(n, s, epoch) for s in seeds])


# ------------------------------------------------------------------------------------- exactness
def trained_alone(x_all, rule, optimizer, jit, seeds, lrs, perms, k, y_all):
    """The bpfree models of (seeds, lrs), each stepped k times alone by its compiled train_step."""
    refs = [reference_model(rule, x_all.shape[1:], s, lr, optimizer) for s, lr in zip(seeds, lrs)]
    initial = [[v.numpy() for v in ref.trainable_variables] for ref in refs]
    for ref, perm in zip(refs, tf.unstack(perms)):
        step = tf.function(lambda xb, yb, ref=ref: ref.train_step((xb, yb)), jit_compile=jit, autograph=False)
        for i in range(k):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            step(tf.gather(x_all, idx), tf.gather(y_all, idx))
    return refs, initial


def compare(a_members, b_members):
    """(max over variables and members of max|a − b| / max|b|, all bitwise equal, elements outside
    allclose(rtol=1e-5, atol=1e-7))."""
    worst, bitwise, outside = 0.0, True, 0
    for a_vars, b_vars in zip(a_members, b_members):
        for a, b in zip(a_vars, b_vars):
            worst = max(worst, float(np.max(np.abs(a - b)) / np.max(np.abs(b))))
            bitwise &= bool(np.array_equal(a, b))
            outside += int(np.sum(~np.isclose(a, b, rtol=1e-5, atol=1e-7)))
    return worst, bitwise, outside


def exactness(x_all, y_all, rule, optimizer, conv, members=4, k=5):
    """Rows: member axis (XLA, no XLA) against each member trained alone in the same mode, and, for
    scale, bpfree alone without XLA against bpfree alone with XLA."""
    n = x_all.shape[0]
    seeds, lrs = [11 + m for m in range(members)], [10.0 ** -(1 + m % 3) for m in range(members)]
    perms = permutations(n, seeds, 0)
    alone = {}
    rows = []
    for jit in (True, False):
        refs, initial = trained_alone(x_all, rule, optimizer, jit, seeds, lrs, perms, k, y_all)
        alone[jit] = [[v.numpy() for v in ref.trainable_variables] for ref in refs]
        net = MemberNet(rule, refs, lrs, optimizer, jit, conv)
        for var, values in zip(net.params, zip(*initial)):
            var.assign(np.stack(values))  # the members start where the models started
        for i in range(k):
            idx = perms[:, i * BATCH:(i + 1) * BATCH]
            net.step(tf.gather(x_all, idx), tf.gather(y_all, idx))
        mine = [[p.numpy()[m] for p in net.params] for m in range(members)]
        rows.append((f"member axis vs alone, {'XLA' if jit else 'no XLA'}", *compare(mine, alone[jit])))
    rows.append(("alone no XLA vs alone XLA (scale)", *compare(alone[False], alone[True])))
    return rows


# ----------------------------------------------------------------------------------------- speed
class Variant:
    """One way of training M members for an epoch: `run()` trains one epoch (returns when done)."""

    def __init__(self, name, M, build):
        self.name, self.M = name, M
        t0 = time.perf_counter()
        self.run = build()
        self.run()  # trace + compile (+ one epoch)
        self.first_wall = time.perf_counter() - t0
        self.wall, self.cpu = [], []

    def timed(self):
        t0, c0 = time.perf_counter(), time.process_time()
        self.run()
        self.wall.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)


def build_variants(x_all, y_all, rule, M, args):
    n, d = x_all.shape[0], x_all.shape[1:]
    steps = -(-n // BATCH)
    seeds, lrs = list(range(100, 100 + M)), [10.0 ** -(1 + m % 3) for m in range(M)]
    perms = permutations(n, seeds, 0)
    x_c, y_c = tf.constant(x_all), tf.constant(y_all)
    variants = []

    def member(jit, conv="grouped", unroll=False):
        def build():
            net = MemberNet(rule, [reference_model(rule, d, s, lr, "sgd") for s, lr in zip(seeds, lrs)],
                            lrs, "sgd", jit, conv, unroll)
            epoch = epoch_function(lambda idx: net.step(tf.gather(x_c, idx), tf.gather(y_c, idx)), n, steps)
            return lambda: epoch(perms)
        return build

    variants.append(Variant("member axis, XLA", M, member(True)))
    variants.append(Variant("member axis, no XLA", M, member(False)))
    if args.unroll and len(d) == 1:
        variants.append(Variant("M matmuls unrolled in one program, XLA", M, member(True, unroll=True)))
    if len(d) == 3 and args.vmap:
        # No XLA: pfor turns a Conv2D with a per-member filter into a while_loop, which XLA refuses.
        variants.append(Variant("member axis, vmap conv, no XLA", M, member(False, "vmap")))
        variants.append(Variant("member axis, im2col conv, XLA", M, member(True, "patches")))
    if M <= args.baseline_max:
        def separate():
            runs = []
            for s, lr, perm in zip(seeds, lrs, tf.unstack(perms)):
                ref = reference_model(rule, d, s, lr, "sgd")
                step = tf.function(lambda xb, yb, ref=ref: ref.train_step((xb, yb)), jit_compile=True,
                                   autograph=False)
                one = lambda idx, step=step: step(tf.gather(x_c, idx[0]), tf.gather(y_c, idx[0]))  # noqa: E731
                runs.append((epoch_function(one, n, steps), perm[None]))
            return lambda: [epoch(p) for epoch, p in runs]
        variants.append(Variant("(a) M models one after another, XLA", M, separate))
    if M <= args.group_max:
        from bpfree.tuning.engine import MemberProgram, prepare
        from bpfree.tuning.splits import InMemorySplit

        def shipped():
            meta = types.SimpleNamespace(features=int(np.prod(d)), num_classes=CLASSES)
            split = InMemorySplit(x_all, np.argmax(y_all, 1), meta, "classification", len(d) == 1)
            size = max(M, 2)  # the engine's fewest members
            program = MemberProgram(reference_model(rule, d, seeds[0], lrs[0], "sgd"), size, split, BATCH,
                                    jit_compile=True)
            for k, (s, lr) in enumerate(zip(seeds, lrs)):
                model = reference_model(rule, d, s, lr, "sgd")
                prepare(model, split)
                program.load(k, model)
            pad = size - M
            return lambda: program.train_epoch(list(seeds) + [0] * pad, 0, [True] * M + [False] * pad)
        variants.append(Variant("(b) the engine's MemberProgram, XLA", M, shipped))
    return variants, steps


def speed(x_all, y_all, rule, args):
    for M in args.members:
        variants, steps = build_variants(x_all, y_all, rule, M, args)
        for rep in range(args.reps):
            for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
                v.timed()
        ms = 1e3 / (M * steps)  # ms per member-step from s per epoch
        for v in variants:
            wall, cpu = statistics.median(v.wall), statistics.median(v.cpu)
            print(f"| {rule:3} | {M:3d} | {v.name:38} | {steps * M / wall:9.0f} | {wall * ms:7.3f} | "
                  f"{min(v.wall) * ms:7.3f} | {cpu * ms:7.3f} | {min(v.cpu) * ms:7.3f} | {v.first_wall:6.1f} |",
                  flush=True)


HEADER = ("| rule | M | variant | member-steps/s (median wall) | ms/member-step wall median | min | "
          "CPU ms/member-step median | min | first call s (trace+compile+1 epoch) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--examples_frac", type=float, default=0.0)
    parser.add_argument("--members", default="1,4,16,64")
    parser.add_argument("--rules", default="dfa,bp")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--baseline-max", dest="baseline_max", type=int, default=16)
    parser.add_argument("--group-max", dest="group_max", type=int, default=4)
    parser.add_argument("--net", choices=sorted(ARCHS), default="dense")
    parser.add_argument("--vmap", action="store_true", help="also time the vmap and im2col member convs")
    parser.add_argument("--conv", choices=("grouped", "patches"), default="grouped", help="member conv (exactness)")
    parser.add_argument("--unroll", action="store_true", help="also time M unrolled matmuls (dense)")
    parser.add_argument("--skip-exact", dest="skip_exact", action="store_true")
    parser.add_argument("--skip-speed", dest="skip_speed", action="store_true")
    args = parser.parse_args()
    args.members = [int(m) for m in args.members.split(",")]
    x, y = bpfree.datasets.load(args.dataset, examples_frac=args.examples_frac, seed=0)
    x_all = (x if args.net == "conv" else x.reshape(len(x), -1)).astype(np.float32)
    y_all = np.eye(CLASSES, dtype=np.float32)[y]
    print(f"{args.dataset} {args.net} ({ARCHS[args.net]}): {x_all.shape}, TF {tf.__version__}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()}")
    rules = args.rules.split(",")
    if not args.skip_exact:
        print("| rule | optimizer | comparison (4 members, lr 1e-1/1e-2/1e-3/1e-1, 5 steps) | "
              "max normwise rel. diff | bitwise | elements outside rtol 1e-5 |")
        for rule in rules:
            for opt in ("sgd", "adam"):
                for row in exactness(x_all, y_all, rule, opt, args.conv):
                    print(f"| {rule} | {opt} | {row[0]} | {row[1]:.2e} | {row[2]} | {row[3]} |", flush=True)
    if not args.skip_speed:
        print(HEADER)
        for rule in rules:
            speed(x_all, y_all, rule, args)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
