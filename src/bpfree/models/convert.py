"""`bpfree.convert(model, rule)`: a user's Keras model, trained by a learning rule.

The converted model has the user's graph and weights; only its weighted layers change kind, as the rule
builds them (`Rule.dense` / `Rule.conv`: a plain layer for bp, one whose backward pass uses another
kernel B for fa, kp, usf, brsf, frsf), and the rule adds what it owns (the direct rules' projections,
PEPITA's input feedback). Training is the one train step every feedforward rule shares.

**Layers.** The weighted layers are the Dense and Conv2D layers, numbered l = 1..L+1 in topological
order; the last one is the output layer: the model's output is its output, or an activation applied to
it alone (``softmax`` for classification), which becomes the model's output activation (the rule reads
the pre-activation z). Feedback matrices are seeded from (``seed``, l), as in an arch-string `Network`.

**Blocks (what the direct rules and PEPITA need on an arbitrary graph).** Hidden weighted layer l owns
the chain of batch norm, activation, dropout and pooling layers that follows it alone (each one the only
reader of the previous, with one input); its activity h_l is the chain's last tensor — the same h_l as
an arch-string block (Conv2D → BatchNorm → activation → Dropout → poolings). Where an Add or a second
reader comes first (a residual block's second convolution: conv → BN → Add), h_l is the tensor just
before it. Rules that detach blocks (dfa, drtp, sdfa, cce, mse, pepita) pass every weighted layer's input
through `stop_gradient`, so W_l learns from h_l's projection alone, whatever the graph joins (the direct
rules' ``project_before_pool=True`` is refused: h_l here includes the chain's poolings).
PEPITA's second pass reads h_{l−1} as layer l's input, so it needs a chain (each weighted layer reading
the previous block's activity, through a Flatten at most): a residual graph is refused, naming the layer.

Target propagation (dtp, tp_lsq, tp_rinv; gait, tp, bp_inv), GLE and Forward-Forward keep their own
models: they build inverses or dynamics from an arch string, and are refused here.
"""

import dataclasses

import keras

from bpfree import arch as arch_lib
from bpfree import rules, seeds
from bpfree import trackers as trackers_lib
from bpfree.arch import ConvSpec
from bpfree.layers import call_dense
from bpfree.models import graph as graph_lib
from bpfree.models.base import resolve_seed
from bpfree.models.layered import LayeredNetwork
from bpfree.models.rule_options import configure_rule


@dataclasses.dataclass(frozen=True)
class ConvertedConfig:
    """What a rule reads of a converted network (the fields of `NetworkConfig` the rules' hooks use)."""

    algorithm: str
    arch: tuple  # per hidden weighted layer: its units (Dense) or a ConvSpec (Conv2D)
    input_dim: object
    output_dim: int
    activation: str
    batchnorm: bool
    dropout: float
    bw_init: str
    problem_type: str
    output_activation: str
    trackers: tuple
    seed: int
    use_bias: bool = True
    weight_decay: float = 0.0
    init_fw_weight_aligned: bool = False

    @property
    def is_conv(self):
        return any(isinstance(b, ConvSpec) for b in self.arch)


@dataclasses.dataclass(frozen=True)
class Block:
    """Hidden weighted layer l and its chain: ``dense`` (the layer), ``end`` (the node whose output is
    h_l), ``pools`` (the chain's poolings) and ``act`` (the chain's activation, as PEPITA reapplies it)."""

    dense: object
    end: str
    pools: tuple
    act: object


def _activation_name(entry):
    cls, config = entry["class_name"], entry["config"]
    if cls == "Activation" or cls in graph_lib.WEIGHTED:
        return config.get("activation", "linear") if isinstance(config.get("activation"), str) else None
    return {"ReLU": "relu", "LeakyReLU": "lrelu", "Softmax": "softmax", "ELU": "elu"}.get(cls)


@keras.saving.register_keras_serializable(package="bpfree")
class ConvertedNetwork(LayeredNetwork):
    """A Keras graph (`bpfree.models.graph.layer_graph`'s nodes) trained by the rule `algorithm`; made by
    `bpfree.convert`, which also copies the source model's weights in. See the module docstring."""

    def __init__(self, algorithm, graph, output, input_shape, *, bw_init="ortho", problem_type="classification",
                 trackers=(), seed=None, rule=None, **kwargs):
        self.rule = configure_rule(algorithm, rule, kwargs)
        super().__init__(**kwargs)
        if self.rule.model != "feedforward" or not self.rule.convertible:
            raise ValueError(f"Cannot convert a model for rule {self.rule.name!r}: it trains its own kind of model "
                             f"({self.rule.model}); rules that train a converted model: {', '.join(convertible_names())}.")
        self.graph = [dict(node) for node in graph]
        self.output_node = output
        self.source_input_shape = tuple(int(d) for d in input_shape)
        by_name = {n["name"]: n for n in self.graph}
        weighted = [n["name"] for n in self.graph if n["layer"]["class_name"] in graph_lib.WEIGHTED]
        if not weighted:
            raise ValueError("Cannot convert a model without a Dense or Conv2D layer: a rule trains weighted layers.")
        self._index = {name: l for l, name in enumerate(weighted, start=1)}
        self._output_dense = weighted[-1]
        output_activation = self._output_activation_name(by_name)
        valid = arch_lib.OUTPUT_ACTIVATIONS[arch_lib.check_problem_type(problem_type)]
        if output_activation not in valid:
            raise ValueError(f"Cannot convert: the model's output {self.output_node!r} applies {output_activation!r}; "
                             f"for {problem_type} it must be one of {', '.join(valid)}.")
        chains = {name: self._chain(name) for name in weighted[:-1]}
        config = ConvertedConfig(
            algorithm=self.rule.name, arch=tuple(self._spec(by_name[n]) for n in weighted[:-1]),
            input_dim=self.source_input_shape[0] if len(self.source_input_shape) == 1 else self.source_input_shape,
            output_dim=int(by_name[self._output_dense]["layer"]["config"]["units"]),
            activation=next((a for n in weighted[:-1] for a in self._chain_activations(n, chains[n]) if a), "linear"),
            batchnorm=any(n["layer"]["class_name"] == "BatchNormalization" for n in self.graph),
            dropout=max([float(n["layer"]["config"]["rate"]) for n in self.graph
                         if n["layer"]["class_name"] == "Dropout"], default=0.0),
            bw_init=bw_init, problem_type=problem_type,
            output_activation=arch_lib.output_activation(problem_type, output_activation),
            trackers=tuple(trackers), seed=resolve_seed(seed))
        if config.is_conv and not self.rule.convolutional:
            raise ValueError(f"Cannot convert a model with Conv2D layers for rule {self.rule.name!r}: it trains fully "
                             f"connected networks only; rules with convolutions: {', '.join(rules.convolutional_names())}.")
        trackers_lib.validate(config.trackers)
        if getattr(self.rule, "project_before_pool", False):
            raise ValueError(f"Cannot convert a model for {self.rule.name} with project_before_pool=True: a converted "
                             "block's activity is the end of its chain, poolings included (valid here: False).")
        self.rule.validate(config)
        self.network_config = config
        if self.rule.name == "pepita":
            self._check_chain(weighted, chains)
        self.graph_layers = [self._make_layer(n, config, chains) for n in self.graph]
        self._by_name = dict(zip((n["name"] for n in self.graph), range(len(self.graph))))
        self._output_activation = keras.activations.get(config.output_activation)
        self.projections = list(self.rule.projections(config))
        self.rule_layers = list(self.rule.build_layers(config))
        shapes = self._build_graph()
        self._blocks = [Block(self._layer(n), chains[n][-1] if chains[n] else n,
                              tuple(c for c in chains[n] if by_name[c]["layer"]["class_name"] in graph_lib.POOLINGS),
                              self._chain_function(n, chains[n]))
                        for n in weighted[:-1]]
        for proj, block in zip(self.projections, self._blocks):
            proj.build(shapes[block.end])
        self._create_metrics()
        self.built = True

    # ------------------------------------------------------------------------------------ structure
    @property
    def blocks(self):
        return self._blocks

    @property
    def output_layer(self):
        return self._layer(self._output_dense)

    def _layer(self, name):
        return self.graph_layers[self._by_name[name]]

    def _readers(self, name):
        return [n for n in self.graph if name in n["inputs"]]

    def _chain(self, name):
        """The nodes that follow weighted node `name` alone: batch norm, activations, dropout, poolings."""
        chain, current = [], name
        while True:
            readers = self._readers(current)
            if len(readers) != 1 or readers[0]["name"] == self.output_node and current == self._output_dense:
                return chain
            reader = readers[0]
            kind = reader["layer"]["class_name"]
            if kind not in graph_lib.ELEMENTWISE + graph_lib.POOLINGS or len(reader["inputs"]) != 1:
                return chain
            chain.append(reader["name"])
            current = reader["name"]

    def _chain_activations(self, name, chain):
        by_name = {n["name"]: n for n in self.graph}
        names = [_activation_name(by_name[name]["layer"])] + [_activation_name(by_name[c]["layer"]) for c in chain]
        return [a for a in names if a and a != "linear"]

    def _chain_function(self, name, chain):
        """f: the weighted layer's own activation, then the chain's activation layers (PEPITA reapplies it)."""
        layers = [self._layer(c) for c in chain if self._node(c)["layer"]["class_name"] in graph_lib.ACTIVATIONS]
        own = self._layer(name).activation

        def act(a):
            a = own(a)
            for layer in layers:
                a = layer(a)
            return a
        return act

    def _node(self, name):
        return self.graph[self._by_name[name]]

    def _output_activation_name(self, by_name):
        entry = by_name[self._output_dense]["layer"]
        own = entry["config"].get("activation", "linear")
        if self.output_node == self._output_dense:
            return own
        node = by_name[self.output_node]
        if node["inputs"] != [self._output_dense] or node["layer"]["class_name"] not in graph_lib.ACTIVATIONS or (
                own != "linear"):
            raise ValueError(f"Cannot convert: the model's output {self.output_node!r} must be its last Dense or Conv2D "
                             f"layer {self._output_dense!r}, or one activation applied to it alone.")
        if len(self._readers(self._output_dense)) != 1:
            raise ValueError(f"Cannot convert: the output layer {self._output_dense!r} has other readers than "
                             "the output activation.")
        return _activation_name(node["layer"])

    @staticmethod
    def _spec(node):
        config, name = node["layer"]["config"], node["name"]
        if node["layer"]["class_name"] == "Dense":
            return int(config["units"])
        kernel, strides = tuple(config["kernel_size"]), tuple(config["strides"])
        problems = [f"{what} {value}" for what, value, ok in (
            ("kernel_size", kernel, kernel[0] == kernel[-1]), ("strides", strides, strides[0] == strides[-1]),
            ("dilation_rate", tuple(config.get("dilation_rate", (1, 1))), set(config.get("dilation_rate", (1, 1))) == {1}),
            ("groups", config.get("groups", 1), config.get("groups", 1) == 1),
            ("data_format", config.get("data_format"), config.get("data_format") in (None, "channels_last")),
            ("padding", config["padding"], config["padding"] in ("same", "valid"))) if not ok]
        if problems:
            raise ValueError(f"Cannot convert Conv2D {name!r} ({', '.join(problems)}): converted convolutions are square, "
                             "channels_last, 'same' or 'valid', without dilation or groups.")
        return ConvSpec(int(config["filters"]), int(kernel[0]), int(strides[0]), (), config["padding"])

    def _check_chain(self, weighted, chains):
        by_name = {n["name"]: n for n in self.graph}
        ends = [graph_lib.INPUT] + [chains[n][-1] if chains[n] else n for n in weighted[:-1]]
        for name, end in zip(weighted, ends):
            source = by_name[name]["inputs"][0]
            while source in by_name and by_name[source]["layer"]["class_name"] == "Flatten":
                source = by_name[source]["inputs"][0]
            if source != end:
                raise ValueError(f"Cannot convert this graph for pepita: layer {name!r} reads {source!r}, not the "
                                 "previous block's activity; its second forward pass needs a chain of blocks.")

    def _make_layer(self, node, config, chains):
        entry, name = node["layer"], node["name"]
        kind = entry["class_name"]
        if kind not in graph_lib.WEIGHTED:
            layer_config = dict(entry["config"], name=name)
            if kind == "Dropout" and layer_config.get("seed") is None:
                owner = next((w for w, chain in chains.items() if name in chain), None)
                l = self._index[owner] if owner else len(self._index) + 1 + self._dropout_rank(name)
                layer_config["seed"] = seeds.dropout(config.seed, l)
            return graph_lib.layer_from_entry(dict(entry, config=layer_config))
        l = self._index[name]
        options = {k: v for k, v in entry["config"].items()
                   if k not in ("units", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                                "groups", "trainable")}
        options["name"] = name
        if name == self._output_dense:
            options["activation"] = "linear"  # the model's output activation is applied to z
        if kind == "Dense":
            return self.rule.dense(l, int(entry["config"]["units"]), config, **options)
        return self.rule.conv(l, self._spec(node), config, **options)

    def _dropout_rank(self, name):
        return [n["name"] for n in self.graph if n["layer"]["class_name"] == "Dropout"].index(name)

    def _build_graph(self):
        """Builds every layer from the input shape; {node: output shape}. Refuses a Dense that reads a
        feature map (Keras would apply it to the last axis; bpfree's blocks flatten first)."""
        shapes = {graph_lib.INPUT: (None, *self.source_input_shape)}
        for node, layer in zip(self.graph, self.graph_layers):
            inputs = [shapes[i] for i in node["inputs"]]
            shape = inputs if len(inputs) > 1 else inputs[0]
            if node["layer"]["class_name"] == "Dense" and len(shape) > 2:
                raise ValueError(f"Cannot convert Dense {node['name']!r}: it reads a tensor of shape {shape}; put a "
                                 "Flatten or a global pooling before it.")
            layer.build(shape)
            shapes[node["name"]] = tuple(layer.compute_output_shape(shape))
        return shapes

    def _stateful_layers(self):
        return list(self.graph_layers)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, x, training=None, rule=True):
        """Returns (hidden activities [h_1..h_L], output pre-activation z); see `LayeredNetwork`."""
        detach = rule and self.rule.detach_blocks
        values = {graph_lib.INPUT: x}
        for node, layer in zip(self.graph, self.graph_layers):
            if node["name"] == self.output_node and node["name"] != self._output_dense:
                continue  # the output activation, applied by the model to z
            inputs = [values[i] for i in node["inputs"]]
            if node["name"] in self._index:
                h = keras.ops.stop_gradient(inputs[0]) if detach else inputs[0]
                values[node["name"]] = call_dense(layer, h, feedback=rule, training=training)
            else:
                values[node["name"]] = layer(inputs if len(inputs) > 1 else inputs[0], training=training)
        return [values[b.end] for b in self._blocks], values[self._output_dense]

    # ------------------------------------------------------------------------------------ config
    def get_config(self):
        c = self.network_config
        return {"name": self.name, "algorithm": c.algorithm, "graph": self.graph, "output": self.output_node,
                "input_shape": list(self.source_input_shape), "bw_init": c.bw_init, "problem_type": c.problem_type,
                "trackers": list(c.trackers), "seed": c.seed, "rule": self.rule.get_config()}


def convertible_names():
    """The rules `convert` serves."""
    return tuple(n for n in rules.names() if rules.rule_class(n).model == "feedforward" and rules.rule_class(n).convertible)


def convert(model, rule, *, bw_init="ortho", problem_type="classification", trackers=(), seed=None, **rule_hparams):
    """A `ConvertedNetwork`: `model`'s graph and current weights, trained by `rule` (a name, with the rule's
    hparams as keywords, or a configured rule). ``seed`` seeds the feedback matrices and dropout masks
    (drawn when None, and recorded); ``bw_init`` is the feedback matrices' init. Refuses, in one line
    naming the layer, what the rule cannot train. See the module docstring for the blocks' definition."""
    nodes, output, input_shape = graph_lib.layer_graph(model)
    converted = ConvertedNetwork(rule, nodes, output, input_shape, bw_init=bw_init, problem_type=problem_type,
                                 trackers=trackers, seed=seed, name=f"{model.name}_converted", **rule_hparams)
    for node in nodes:
        source, target = model.get_layer(node["name"]), converted._layer(node["name"])
        if node["layer"]["class_name"] in graph_lib.WEIGHTED:
            for attr in ("kernel", "bias"):
                if getattr(source, attr, None) is not None:
                    getattr(target, attr).assign(getattr(source, attr))
        elif source.weights:
            target.set_weights(source.get_weights())
    return converted
