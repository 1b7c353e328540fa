"""A Keras model's layer graph as plain data: what `bpfree.convert` rebuilds with a rule's layers.

`layer_graph(model)` reads a built Sequential or functional model through its public `get_config`
(Keras's own serialization of the graph: every layer's config and the tensors it was called on) and
returns its nodes in topological order, each one layer called once:

    [{"name": "dense", "layer": {<the layer's serialized config>}, "inputs": ["flatten"]}, ...]

JSON-able, so a converted model saves it in its own config and rebuilds the same graph in a fresh
process. The one input is the node named by `INPUT`; nested models, shared layers (one layer called
twice), several inputs or outputs, and layers this module does not know are refused in one line naming
the layer, before anything is built.
"""

import keras

INPUT = "__input__"

WEIGHTED = ("Dense", "Conv2D")
# Layers a converted graph may hold, besides the weighted ones: what the rules' block definitions
# (`bpfree.models.convert`) know how to treat.
ACTIVATIONS = ("Activation", "ReLU", "LeakyReLU", "Softmax", "ELU")
ELEMENTWISE = ("BatchNormalization", "Dropout", *ACTIVATIONS)
POOLINGS = ("MaxPooling2D", "AveragePooling2D")
OTHERS = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Add", "ShortcutA")
KNOWN = (*WEIGHTED, *ELEMENTWISE, *POOLINGS, *OTHERS)


def _unknown(name, class_name):
    return ValueError(f"Cannot convert layer {name!r} ({class_name}): the layers a rule can train are "
                      f"{', '.join(KNOWN)} (and InputLayer).")


def _layer_entry(layer_config):
    return {k: v for k, v in layer_config.items() if k not in ("inbound_nodes", "name", "build_config")}


def _history(arg):
    """The (layer name, node index, tensor index) of every tensor in a node's serialized arguments."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [tuple(arg["config"]["keras_history"])]
    if isinstance(arg, (list, tuple)):
        return [h for a in arg for h in _history(a)]
    return []


def _functional_nodes(config):
    (input_name, *_), *more_inputs = config["input_layers"] if isinstance(config["input_layers"][0], list) else [
        config["input_layers"]]
    if more_inputs:
        raise ValueError(f"Cannot convert a model with {1 + len(more_inputs)} inputs: a rule trains a model of one input.")
    outputs = config["output_layers"]
    outputs = outputs if isinstance(outputs[0], list) else [outputs]
    if len(outputs) != 1:
        raise ValueError(f"Cannot convert a model with {len(outputs)} outputs: a rule trains a model of one output.")
    nodes = []
    for entry in config["layers"]:
        name, class_name = entry["name"], entry["class_name"]
        if class_name == "InputLayer":
            continue
        if class_name in ("Functional", "Sequential", "Model"):
            raise ValueError(f"Cannot convert the nested model {name!r}: flatten it into one functional model "
                             "(call its layers on the outer model's tensors).")
        calls = entry.get("inbound_nodes", [])
        if len(calls) != 1:
            raise ValueError(f"Cannot convert layer {name!r}: it is called {len(calls)} times; a converted graph "
                             "calls each layer once (shared layers are not supported).")
        history = _history(calls[0].get("args", []))
        if any(node != 0 or index != 0 for _, node, index in history):
            raise ValueError(f"Cannot convert layer {name!r}: it reads a shared layer's second call or output.")
        inputs = [INPUT if source == input_name else source for source, _, _ in history]
        nodes.append({"name": name, "layer": _layer_entry(entry), "inputs": inputs})
    return nodes, outputs[0][0]


def _sequential_nodes(config):
    nodes, previous = [], INPUT
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            continue
        name = entry["config"]["name"]
        if entry["class_name"] in ("Functional", "Sequential", "Model"):
            raise ValueError(f"Cannot convert the nested model {name!r}: flatten it into one Sequential model.")
        nodes.append({"name": name, "layer": {k: v for k, v in entry.items() if k != "build_config"},
                      "inputs": [previous]})
        previous = name
    return nodes, previous


def topological(nodes):
    """`nodes` ordered so that every node follows its inputs (stable: the config's order where free)."""
    done, ordered, pending = {INPUT}, [], list(nodes)
    while pending:
        ready = [n for n in pending if all(i in done for i in n["inputs"])]
        if not ready:
            raise ValueError(f"Cannot convert: the graph has a cycle or a missing input at {pending[0]['name']!r}.")
        for n in ready:
            ordered.append(n)
            done.add(n["name"])
        pending = [n for n in pending if n["name"] not in done]
    return ordered


def layer_graph(model):
    """(nodes, output node name, input shape without the batch axis) of a built Keras model."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"convert takes a keras.Model (Sequential or functional), got {type(model).__name__}.")
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(f"Cannot convert model {model.name!r}: it is not built; give it an input "
                         "(keras.Input(shape) first, or call model.build(input_shape)).")
    if len(model.inputs) != 1:
        raise ValueError(f"Cannot convert a model with {len(model.inputs)} inputs: a rule trains a model of one input.")
    if isinstance(model, keras.Sequential):
        nodes, output = _sequential_nodes(model.get_config())
    elif type(model).__name__ == "Functional":
        nodes, output = _functional_nodes(model.get_config())
    else:
        raise ValueError(f"Cannot convert model {model.name!r} of class {type(model).__name__}: a subclassed model's "
                         "call is Python code, not a graph; write it as a Sequential or functional model.")
    for node in nodes:
        class_name = node["layer"]["class_name"]
        if class_name not in KNOWN:
            raise _unknown(node["name"], class_name)
    shape = tuple(model.inputs[0].shape[1:])
    return topological(nodes), output, shape


def layer_from_entry(entry):
    """A fresh layer from its serialized config (the weights come later)."""
    return keras.saving.deserialize_keras_object(entry)
