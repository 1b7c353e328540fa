"""GLE time-loop speed on the seed's MNIST-1D E2E net (7 GLEDense layers, ≈15k params, batch 100, 360 steps).

    .venv/bin/python bench/gle_speed.py [--repeats 3] [--batches 4]

Prints dt steps per second (one step = the whole network × batch 100, with an Adam update where it
trains) for each way of running the loop, all measured in this one process on the same weights:

- while_loop + XLA, Keras Adam     `GLENetwork` default: `optimizer.apply` inside the loop, every step
- while_loop, no XLA, Keras Adam   the default graph without XLA
- one dt step per call (XLA)       a jit-compiled single step called 360× per batch from Python,
                                   state in variables, Keras Adam

and where the time of the default goes, as ratios to its own step time: the forward dynamics alone
(ê = 0, what evaluation runs), the full sweep (forward + error neurons + gradients) with the weights
fixed, the same sweep with plain SGD updating the carried kernels (the cost of weights that change
inside the loop, whatever the optimizer), the optimizer's share (default − sweep), and one epoch
(40 training batches + the 1000-sequence test pass at batch 1000). Wall and CPU seconds are both
shown: the machine is shared, so compare ratios.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from bpfree.experiments.mnist1d import load_data
from bpfree.models.gle_mnist1d import e2e_lag_mlp
from bpfree.layers.gle import GLEParams, gle_forward_step, gle_step

T, B = 360, 100


def timed(fn, repeats):
    """(median wall seconds, median CPU seconds) of fn() over `repeats` runs after one warm-up call."""
    return timed_round_robin([fn], repeats)[0]


def timed_round_robin(fns, repeats):
    """`timed` for several functions, interleaved (one run of each per round) so that the load of the
    shared machine drifts over all of them alike."""
    for fn in fns:
        fn()
    walls, cpus = [[] for _ in fns], [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[i].append(time.perf_counter() - w0)
            cpus[i].append(time.process_time() - c0)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus)]


def model(jit=True):
    keras.utils.set_random_seed(0)
    m = e2e_lag_mlp(jit_compile=jit)
    m.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8))
    return m


def sweep_only(m, sgd=False):
    """The training sweep (dynamics, error neurons, GLE gradients) in a jit while_loop, with the weights
    fixed (gradients summed into loop variables) or, with `sgd`, carried and updated by plain SGD."""
    layers = m.gle_layers

    @tf.function(jit_compile=True, autograph=False)
    def run(x, y):
        xs = tf.transpose(x)[:, :, None]
        fixed = [GLEParams(*(tf.convert_to_tensor(p) for p in layer.params())) for layer in layers]
        kernels = [p.kernel for p in fixed]

        def body(t, states, carried):
            _, e_top = m.output_error(states[-1].r, y)
            new, out = [], []
            for l, layer in enumerate(layers):
                r_in = xs[t] if l == 0 else states[l - 1].r
                e_in = e_top if l == len(layers) - 1 else states[l + 1].e_bottom
                params = fixed[l]._replace(kernel=carried[l]) if sgd else fixed[l]
                state, g = gle_step(params, states[l], r_in, e_in, layer.config, need_e_bottom=l > 0)
                new.append(state)
                out.append(carried[l] - 1e-3 * g.kernel if sgd else carried[l] + g.kernel)
            return t + 1, new, out

        init = (tf.constant(0), [layer.state(B) for layer in layers],
                kernels if sgd else [tf.zeros_like(k) for k in kernels])
        return tf.add_n([tf.reduce_sum(k) for k in tf.while_loop(lambda t, *_: t < T, body, init)[2]])

    return run


def forward_only(m):
    layers = m.gle_layers

    @tf.function(jit_compile=True, autograph=False)
    def run(x):
        xs = tf.transpose(x)[:, :, None]
        params = [layer.params() for layer in layers]

        def body(t, states):
            new = [gle_forward_step(params[l], states[l], xs[t] if l == 0 else states[l - 1].r, layer.config)
                   for l, layer in enumerate(layers)]
            return t + 1, new

        init = (tf.constant(0), [layer.state(B) for layer in layers])
        return tf.while_loop(lambda t, *_: t < T, body, init)[1][-1].r

    return run


def per_step_calls(m):
    """One dt step per call: a jit-compiled step reading and writing the state variables, with
    optimizer.apply, driven by a Python loop over the 360 steps of a batch."""
    layers = m.gle_layers
    opt = m.optimizer

    @tf.function(jit_compile=True, autograph=False)
    def step(x_t, y):
        states = [layer.state() for layer in layers]
        _, e_top = m.output_error(states[-1].r, y)
        grads, variables = [], []
        for l, layer in enumerate(layers):
            r_in = x_t if l == 0 else states[l - 1].r
            e_in = e_top if l == len(layers) - 1 else states[l + 1].e_bottom
            state, g = gle_step(layer.params(), states[l], r_in, e_in, layer.config, need_e_bottom=l > 0)
            layer.assign_state(state)
            for grad, var in layer.grads_and_vars(g):
                grads.append(grad)
                variables.append(var)
        opt.apply(grads, variables)

    def run(x, y):
        xs = tf.transpose(x)[:, :, None]
        for t in range(T):
            step(xs[t], y)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--batches", type=int, default=4, help="training batches per timed repetition")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = load_data()
    x = tf.constant(x_train[: B * args.batches].reshape(args.batches, B, T))
    y = tf.constant(keras.utils.to_categorical(y_train[: B * args.batches], 10).reshape(args.batches, B, 10), "float32")
    steps = args.batches * T
    rows = []

    def train_loop(m):
        loop = m._loop("train")
        return lambda: [loop(x[i], y[i])[1].numpy() for i in range(args.batches)]

    default = model()
    variants = [("while_loop + XLA, Keras Adam (default)", train_loop(default)),
                ("while_loop, no XLA, Keras Adam", train_loop(model(jit=False)))]
    per_step = model()
    one = per_step_calls(per_step)
    variants.append(("one dt step per call (XLA step)", lambda: one(x[0], y[0])))
    times = timed_round_robin([fn for _, fn in variants], args.repeats)
    for (name, _), (wall, cpu) in zip(variants, times):
        n = T if name.startswith("one dt") else steps
        rows.append((name, n / wall, n / cpu, wall / n * 1e6, cpu / n * 1e6))
    table_base_us, table_base_cpu = rows[0][3], rows[0][4]

    sweep, sgd, fwd = sweep_only(default), sweep_only(default, sgd=True), forward_only(default)
    parts = [("forward dynamics only (ê = 0)", lambda: [fwd(x[i]).numpy() for i in range(args.batches)]),
             ("sweep: forward + errors + gradients", lambda: [sweep(x[i], y[i]).numpy() for i in range(args.batches)]),
             ("sweep + plain SGD on the kernels in the loop",
              lambda: [sgd(x[i], y[i]).numpy() for i in range(args.batches)])]
    default_loop = variants[0][1]
    times = timed_round_robin([default_loop] + [fn for _, fn in parts], args.repeats)
    base_us, base_cpu = times[0][0] / steps * 1e6, times[0][1] / steps * 1e6  # the default, same rounds
    part_rows = [(name, wall / steps * 1e6, cpu / steps * 1e6) for (name, _), (wall, cpu) in zip(parts, times[1:])]

    # One epoch as the experiment runs it: 40 batches of training, then the test pass at batch 1000.
    xt, yt = x_train, keras.utils.to_categorical(y_train, 10)
    xv, yv = x_test, keras.utils.to_categorical(y_test, 10)
    epoch_model = model()
    epoch_model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8), metrics=["error_rate"])
    fit = lambda: epoch_model.fit(xt, yt, batch_size=B, epochs=1, verbose=0)  # noqa: E731
    test = lambda: epoch_model.evaluate(xv, yv, batch_size=1000, verbose=0)  # noqa: E731
    fit_wall, fit_cpu = timed(fit, 1)
    test_wall, test_cpu = timed(test, args.repeats)
    train_steps = len(xt) // B * T

    print(f"\nGLE E2E MNIST-1D net, batch {B}, {T} steps per batch; median of {args.repeats}")
    print(f"{'variant':44s} {'steps/s':>8s} {'steps/CPU-s':>12s} {'µs/step':>8s} {'× default':>10s} {'(CPU)':>6s}")
    for name, rate, cpu_rate, us, cpu_us in rows:
        print(f"{name:44s} {rate:8.0f} {cpu_rate:12.0f} {us:8.1f} {us / table_base_us:10.2f} "
              f"{cpu_us / table_base_cpu:6.2f}")
    print(f"\nwhere the default's time goes (per dt step; ratios to the default's {base_us:.1f} µs, "
          f"CPU {base_cpu:.1f} µs):")
    print(f"{'part':44s} {'µs/step':>8s} {'CPU µs':>8s} {'ratio':>6s} {'(CPU)':>6s}")
    for name, us, cpu_us in part_rows:
        print(f"{name:44s} {us:8.1f} {cpu_us:8.1f} {us / base_us:6.2f} {cpu_us / base_cpu:6.2f}")
    us, cpu_us = base_us - part_rows[1][1], base_cpu - part_rows[1][2]
    print(f"{'optimizer in the loop (default − sweep)':44s} {us:8.1f} {cpu_us:8.1f} {us / base_us:6.2f} "
          f"{cpu_us / base_cpu:6.2f}")
    epoch_wall, epoch_cpu = fit_wall + test_wall, fit_cpu + test_cpu
    print(f"\none epoch: training {fit_wall:.2f} s (CPU {fit_cpu:.2f} s), test pass {test_wall:.2f} s "
          f"(CPU {test_cpu:.2f} s; {test_wall / epoch_wall:.0%} of the epoch)")
    print(f"  {train_steps / epoch_wall:.0f} training steps/s including the test pass "
          f"→ 150 epochs ≈ {150 * epoch_wall / 60:.1f} min wall, {150 * epoch_cpu / 60:.1f} CPU-min")


if __name__ == "__main__":
    main()
