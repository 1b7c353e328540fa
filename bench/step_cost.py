"""Issue 22, "per step": where one train step of `RuleModel.train_step` spends CPU beyond plain Keras.

    PYTHONPATH=src python bench/step_cost.py [--arch 784-256-256-10] [--batches 64,128] [--modes graph,xla]
                                             [--steps 100] [--reps 7] [--variants ...]
                                             [--skip-graphs] [--skip-timing]

Part 1, graphs (deterministic, no timing): the step traced as a `tf.function` of `train_step` for
- ``keras``: a `keras.Sequential` of the same layers (bench/throughput.py's reference), Keras's train step;
- ``bp``: bpfree's Network, rule bp, `RuleModel.train_step`;
- ``bp+keras_step``: the same bpfree model with `keras.Model.train_step` put in its place (isolates the
  step from the layers);
- ``dfa``, ``fa``: bpfree's Network, rules dfa and fa;
- ``fa+bias_add``: fa with its layers' bias added by `tf.nn.bias_add` (as Keras's Dense) instead of ``+``,
  patched in this script only (it is not the same update in graph mode: see `_call_with_bias_add`);
counted three ways: ops of the traced graph, ops and control edges after Grappler (what graph mode runs),
instructions of XLA's optimized HLO module (what jit_compile runs; a fused computation counts as one
instruction of the entry computation plus its body). Op types whose count differs from ``keras`` are listed.

Part 2, timing: each model compiled with SGD(1e-3) and categorical cross-entropy (``jit_compile`` per
mode), its ``train_function`` called ``--steps`` times on a cached batch iterator (no `fit` callbacks:
the step alone). Variants (``--variants``; XLA skips the graph-only ones): the ones above; ``keras#2``, a
second, identical keras.Sequential (an A/A pair: its ratio is the noise floor of the machine at that
moment); ``bp-edges`` / ``dfa-edges``: the same models with `optimizers.apply_after`'s control
dependencies left out (graph mode only: XLA orders resource accesses itself; not safe for every rule,
measured only to price them); ``bp spe=10``: bp compiled with ``steps_per_execution=10`` (ten steps per
call of the train function: Keras's per-call dispatch, the same for every model, paid once per ten
steps; µs are per step). Every variant is timed once per repetition, the order rotated from one
repetition to the next; each repetition gives a ratio variant / keras from the two timings of that
repetition; the table gives µs per step (median over repetitions) and the ratio's median and min, by
process CPU time and by wall time.

Recorded run, 2026-12-07 01:18–01:30 UTC: 2-core AMD EPYC, TF 2.21 / Keras 3.15.1, CPU only, load average
5–8 from other sessions' jobs (ratios of two identical Keras models ranged 0.86–1.15 at 7 reps).
-----------------------------------------------------------------------------------------------------------
Graphs (784-256-256-10, tanh, batch 64, SGD), ops vs ``keras``:
- bp: the traced graph, the graph Grappler runs (incl. the remapper's three MatMul+BiasAdd+tanh
  _FusedMatMul) and XLA's optimized HLO module (224 instructions, identical text but for names) are the
  same as Keras's. The one difference: 57 control edges after Grappler against Keras's 9 — `apply_after`'s,
  from the 6 gradients to the optimizer's reads of the learning rate and iteration counter.
  ``bp+keras_step`` has Keras's 9: nothing else in `RuleModel.train_step` (ForwardPass, the head tape,
  `surrogate`, `scale_loss`, the loss tracker, `unpack_x_y_sample_weight`, `compute_metrics`, the metric
  loops, Network's blocks and activations) leaves an op in the graph.
- dfa: + the rule's own arithmetic: 2 projections h_l B_l (64×256×10 each, whose value cancels in
  z + (s − sg(s))), their sum, one Sub, one AddV2; its backward uses e B_lᵀ where bp uses δ W_lᵀ.
- fa: its layers add the bias with ``+`` (AddV2, bias gradient by Sum + Reshape), so Grappler fuses one
  MatMul+BiasAdd+tanh where Keras fuses three; ``fa+bias_add`` has Keras's graph plus the reads of B. Not
  bitwise the same update in graph mode (≤ 3e-8 apart after 20 Adam steps; the same bits under XLA).

CPU ratio vs keras, median of 31 reps, two runs (``--reps 31 --variants ...``):
| graph, batch 64  | keras#2 0.991, 1.015 | bp 1.025, 1.049 | bp-edges 1.004, 1.011 | bp+keras_step 1.013 |
|                  | fa 1.021 | fa+bias_add 1.010 |
| graph, batch 128 | keras#2 1.004 | bp 1.012 | bp-edges 1.012 | fa 1.029 | fa+bias_add 1.007 |
| XLA, batch 64    | keras#2 0.963 | bp 1.016 | bp+keras_step 0.964 |
Medians of 7 reps over four default runs (graph 64, graph 128, XLA 64, XLA 128): bp 1.02–1.14, 0.98–1.17,
0.98–1.06, 0.95–1.14; keras#2 0.98–1.01, 1.03–1.10, 0.86–1.08, 1.11–1.15. Nothing separates bp from Keras
beyond the A/A pair's spread but, perhaps, `apply_after`'s edges in graph mode at batch 64: bp − bp-edges
≈ 2–4 % of the CPU in both 31-rep runs (about one standard error of a median here), none at batch 128.
The fa fusion is not seen at these sizes (fa − fa+bias_add ≈ 1–2 %, within the spread).
``bp spe=10``: 0.66–0.81 (CPU per step) in every run: Keras's per-call dispatch of the train function
(an iterator get_next, the Optional, the function call: ≈ 200–500 µs CPU per call here; an empty
`tf.function` taking get_next alone cost ≈ 220 µs) is the largest cost beyond the arithmetic, the same
for bpfree and Keras. steps_per_execution = 10 gave bitwise the same weights and Adam slots as 1 after
20 steps (and after 23 steps + a partial batch) for bp, dfa, fa, drtp, kp, cce, graph and XLA (scratch
check, not kept). On a net where the step is all dispatch (``--arch 16-8-4 --batches 8``) bp spe=10 costs
0.35 of keras per step. The first call (trace, Grappler, XLA compile) costs the same for keras, bp and dfa
(≈ 0.08 s CPU graph, ≈ 0.48 s XLA; scratch check).
"""

import argparse
import collections
import os
import re
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.grappler import cluster as gcluster
from tensorflow.python.grappler import tf_optimizer

from bpfree import build_model, optimizers
from bpfree.arch import parse_arch
from bpfree.layers.feedback import AlternativeBackward

_apply_after = optimizers.apply_after
SPE = 10  # the steps_per_execution of the "bp spe=10" variant
DEFAULT_TIMED = f"keras#2,bp,bp-edges,dfa,fa,fa+bias_add,bp spe={SPE}"


def _apply_after_or_plain(optimizer, grads, variables, after=()):
    """`apply_after`, or a plain `optimizer.apply` for an optimizer marked ``_no_edges`` (the
    ``-edges`` variants)."""
    if getattr(optimizer, "_no_edges", False):
        if not optimizer.built:
            optimizer.build(variables)
        optimizer.apply(grads, variables)
    else:
        _apply_after(optimizer, grads, variables, after)


optimizers.apply_after = _apply_after_or_plain  # the train step looks it up at trace time


def _call_with_bias_add(self, inputs, training=None, feedback=True):
    """`AlternativeBackward.call` of a fixed-feedback Dense layer with the bias added by `tf.nn.bias_add`
    (as Keras's Dense adds it) instead of ``+``: the ``fa+bias_add`` variant. Not bitwise the same
    update in graph mode (Grappler then fuses MatMul + BiasAdd + tanh into one oneDNN kernel)."""
    if not feedback:
        return keras.layers.Dense.call(self, inputs)
    outputs = self._alternative_backward(inputs, self.backward_kernel())
    if self.bias is not None:
        outputs = tf.nn.bias_add(outputs, self.bias)
    return self.activation(outputs) if self.activation is not None else outputs


def reference(widths, activation):
    layers = [keras.Input((widths[0],))]
    layers += [keras.layers.Dense(w, activation=activation) for w in widths[1:-1]]
    layers.append(keras.layers.Dense(widths[-1], activation="softmax"))
    return keras.Sequential(layers)


def variants(widths, activation):
    hidden = "-".join(str(w) for w in widths[1:-1])

    def ours(rule, keras_step=False, no_edges=False, steps_per_execution=1, bias_add=False):
        def make():
            model = build_model(rule, hidden, widths[0], widths[-1], activation=activation, seed=0)
            if bias_add:
                for layer in model.weighted_layers:
                    if isinstance(layer, AlternativeBackward):
                        layer.call = types.MethodType(_call_with_bias_add, layer)
            if keras_step:
                model.train_step = types.MethodType(keras.Model.train_step, model)
            model._bench_no_edges = no_edges
            model._bench_spe = steps_per_execution
            return model
        return make

    return {"keras": lambda: reference(widths, activation), "keras#2": lambda: reference(widths, activation),
            "bp": ours("bp"),
            "bp+keras_step": ours("bp", keras_step=True), "bp-edges": ours("bp", no_edges=True),
            "dfa": ours("dfa"), "dfa-edges": ours("dfa", no_edges=True),
            "fa": ours("fa"), "fa+bias_add": ours("fa", bias_add=True),
            f"bp spe={SPE}": ours("bp", steps_per_execution=SPE)}


def compiled(model, jit_compile):
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy", jit_compile=jit_compile,
                  steps_per_execution=getattr(model, "_bench_spe", 1))
    model.optimizer._no_edges = getattr(model, "_bench_no_edges", False)
    return model


# ------------------------------------------------------------------------------------------ graphs
def graph_counts(model, batch, widths):
    model = compiled(model, False)
    model.optimizer.build(model.trainable_variables)
    x, y = tf.zeros((batch, widths[0])), tf.zeros((batch, widths[-1]))
    fn = tf.function(model.train_step).get_concrete_function((x, y))
    traced = collections.Counter(op.type for op in fn.graph.get_operations())
    meta = tf.compat.v1.train.export_meta_graph(graph_def=fn.graph.as_graph_def(), graph=fn.graph)
    meta.collection_def["train_op"].node_list.value.extend(
        [t.name for t in fn.outputs] + [op.name for op in fn.graph.control_outputs])
    # Placed on the CPU, so that Grappler's remapper fuses what it fuses at run time (_FusedMatMul).
    for node in meta.graph_def.node:
        node.device = "/job:localhost/replica:0/task:0/device:CPU:0"
    nodes = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta, cluster=gcluster.Cluster()).node
    grappled = collections.Counter(n.op for n in nodes)
    edges = sum(1 for n in nodes for i in n.input if i.startswith("^"))
    hlo = tf.function(model.train_step, jit_compile=True).experimental_get_compiler_ir((x, y))(stage="optimized_hlo")
    instructions = collections.Counter(m.group(1) for m in re.finditer(r"= \S+ ([a-z][\w-]*)\(", hlo))
    return traced, grappled, edges, instructions


def difference(counts, reference_counts):
    keys = sorted(set(counts) | set(reference_counts))
    diff = {k: counts[k] - reference_counts[k] for k in keys if counts[k] != reference_counts[k]}
    return ", ".join(f"{k} {v:+d}" for k, v in diff.items()) or "none"


def graphs(widths, activation, batch):
    names = ("keras", "bp", "bp+keras_step", "dfa", "fa", "fa+bias_add")
    makers = variants(widths, activation)
    counts = {name: graph_counts(makers[name](), batch, widths) for name in names}
    print(f"\nGraphs: dense {'-'.join(map(str, widths))}, {activation}, batch {batch}, SGD")
    print("| step | traced ops | Grappler ops | Grappler control edges | XLA HLO instructions "
          "| traced op types vs keras | Grappler op types vs keras | HLO vs keras |")
    print("|---|---|---|---|---|---|---|---|")
    k = counts["keras"]
    for name in names:
        traced, grappled, edges, hlo = counts[name]
        print(f"| {name} | {sum(traced.values())} | {sum(grappled.values())} | {edges} | {sum(hlo.values())} "
              f"| {difference(traced, k[0])} | {difference(grappled, k[1])} | {difference(hlo, k[3])} |", flush=True)


# ------------------------------------------------------------------------------------------ timing
def timing(widths, activation, batch, jit_compile, args):
    rng = np.random.default_rng(0)
    n = batch * args.steps
    x = rng.normal(size=(n, widths[0])).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, widths[-1], n), widths[-1]).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    for _ in data:
        pass  # fill the cache
    makers = variants(widths, activation)
    makers = {k: v for k, v in makers.items() if k in ("keras", *args.variants.split(","))}
    if jit_compile:
        makers = {k: v for k, v in makers.items() if not k.endswith(("-edges", "+bias_add"))}
    functions, calls = {}, {}
    for name, make in makers.items():
        model = compiled(make(), jit_compile)
        model.fit(data.take(2 * SPE), epochs=1, verbose=0, shuffle=False)  # traces and compiles
        functions[name] = model.train_function
        calls[name] = args.steps // model.steps_per_execution
        for _ in range(2):
            iterator = iter(data.take(2 * SPE))
            functions[name](iterator), functions[name](iterator)  # this iterator type's trace

    def timed(name):
        iterator = iter(data)
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls[name]):
            logs = functions[name](iterator)
        float(logs["loss"])
        return (time.perf_counter() - start) / args.steps * 1e6, (time.process_time() - start_cpu) / args.steps * 1e6

    names = list(functions)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            w, c = timed(name)
            wall[name].append(w)
            cpu[name].append(c)

    def ratios(series, name):
        return [a / b for a, b in zip(series[name], series["keras"])]

    print(f"\nTiming: {'XLA' if jit_compile else 'graph'}, batch {batch}, {args.steps} steps x {args.reps} reps")
    print("| step | CPU µs/step (median) | CPU ratio vs keras, median (min) | wall µs/step (median) "
          "| wall ratio, median (min) |")
    print("|---|---|---|---|---|")
    for name in names:
        rc, rw = ratios(cpu, name), ratios(wall, name)
        print(f"| {name} | {statistics.median(cpu[name]):.0f} | {statistics.median(rc):.3f} ({min(rc):.3f}) "
              f"| {statistics.median(wall[name]):.0f} | {statistics.median(rw):.3f} ({min(rw):.3f}) |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="784-256-256-10", help="input-hidden...-output widths")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--modes", default="graph,xla")
    parser.add_argument("--steps", type=int, default=100, help="a multiple of 10")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--variants", default=DEFAULT_TIMED,
                        help=f"comma-separated, timed beside keras (default {DEFAULT_TIMED}; also bp+keras_step, "
                             "dfa-edges, whose graphs part 1 already compares)")
    parser.add_argument("--skip-graphs", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    widths = parse_arch(args.arch)
    batches = [int(b) for b in args.batches.split(",")]
    if not args.skip_graphs:
        graphs(widths, args.activation, batches[0])
    if not args.skip_timing:
        for mode in args.modes.split(","):
            for batch in batches:
                timing(widths, args.activation, batch, mode == "xla", args)


if __name__ == "__main__":
    main()
