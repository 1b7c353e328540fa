"""Per-epoch checkpoints of one execution, so that a killed run resumes at the epoch it reached.

`<records>/<trial_id>/execution_<k>.ckpt.npz`, beside the execution's record, holds after every epoch

- the value of every variable of the model (weights, fixed feedback matrices, batch-norm statistics,
  the rule's own state such as DTP's noise seed and step, GLE's neuron state, and the states of the
  seed generators that draw dropout masks) and of its optimizer (slots, iteration count);
- the number of epochs done (the data pipeline draws epoch e's order from (seed, e) alone, so this is
  the data position) and the history so far.

Restoring it into a model built and compiled exactly as the first time gives the state the run had at
the end of that epoch, bit for bit, so the resumed execution continues as if never stopped. Plain
.npz arrays (no pickle), written atomically; kept as the final state (`FINAL_SUFFIX`) when the execution
completes, deleted when it diverges.

A checkpoint also records whose it is (``identity``: the trial id and execution its path names when it is
written); one found under another execution's name (copied there) is refused like a corrupt one. A
checkpoint written before identities were recorded has none and is restored as before.
"""

import json
import os
import re

import numpy as np

from bpfree import io

SUFFIX = ".ckpt.npz"
FINAL_SUFFIX = ".final.npz"  # the state at a completed execution's end: what extending its epochs resumes from


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored into this model (corrupt, or from another model)."""


def path_for(record_path, suffix=SUFFIX):
    """The checkpoint path of the execution whose record is `record_path` (``suffix=FINAL_SUFFIX``: its final state)."""
    return record_path[: -len(".json")] + suffix if record_path.endswith(".json") else record_path + suffix


def keep_as_final(path):
    """Keeps the last checkpoint of a completed execution as its final state (`FINAL_SUFFIX`), from which a
    search extended to more epochs resumes it."""
    if os.path.exists(path):
        os.replace(path, path[: -len(SUFFIX)] + FINAL_SUFFIX if path.endswith(SUFFIX) else path + FINAL_SUFFIX)


def recover_final(path, epochs):
    """Keeps the checkpoint at `path` as the final state (`keep_as_final`) if it is the last state of its
    completed execution whose record holds `epochs` epochs: this execution's (`identity`), after exactly
    those epochs. A kill between the completed record and `keep_as_final` (the order searches wrote them
    in before the final state was kept first) left it so, with no final state or an earlier one (an
    extension's start). Returns whether it did; a checkpoint of other epochs, or unreadable, is left as is."""
    if not os.path.exists(path):
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        done, recorded = meta["epochs_done"], meta.get("identity")
    except Exception:  # unreadable: restoring it would say so, if it is ever restored
        return False
    if done != epochs or (recorded is not None and recorded != identity(path)):
        return False
    keep_as_final(path)
    return True


def state_variables(model):
    """Every variable whose value the training run carries from one epoch to the next, in a fixed order:
    the model's (including seed-generator states) then its optimizer's (built if it is not yet)."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables, seen = [], set()
    for v in list(model.variables) + list(optimizer.variables):
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    return variables


def structure(paths, model_count):
    """The variables' paths with what depends on how many models the process built before stripped:
    Keras numbers the names of optimizers and seed generators per process ("adam_3", "seed_generator_7"),
    so the same model built later (a resumed run, a member of `bpfree.tuning.engine.MemberProgram`) has other
    paths for the same state. Optimizer variables (after the first `model_count`) become "optimizer/…"."""
    out = []
    for i, path in enumerate(paths):
        if i >= model_count:
            path = "optimizer/" + path.split("/", 1)[-1]
        out.append(re.sub(r"(^|/)seed_generator(_\d+)?/", r"\1seed_generator/", path))
    return out


def save(path, model, epochs_done, history):
    """Writes the checkpoint of `model` after `epochs_done` epochs with `history` (the record's)."""
    variables = state_variables(model)
    meta = {"epochs_done": int(epochs_done), "history": history,
            "variables": [[v.path, list(v.shape)] for v in variables], "identity": identity(path)}
    arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    meta_text = json.dumps(io.jsonable(meta), allow_nan=False)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(meta_text), **arrays)

    io.write_atomic(path, write, SUFFIX)


def identity(path):
    """{"trial_id", "execution"} that a checkpoint's path names (`<trial_id>/execution_<k>.<suffix>`), or
    None for a path outside that layout."""
    match = re.fullmatch(r"execution_(\d+)\..*", os.path.basename(path))
    if not match:
        return None
    return {"trial_id": os.path.basename(os.path.dirname(os.path.abspath(path))), "execution": int(match.group(1))}


def restore(path, model):
    """Loads the checkpoint at `path` into `model` (built and compiled as when it was written); returns
    (epochs_done, history). A `CheckpointError` if the file is unreadable (truncated, empty, bit-flipped:
    whatever reading it raises), belongs to another execution, or does not fit the model; the model is
    then left untouched."""
    variables = state_variables(model)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            values = [data[f"v{i}"] for i in range(len(meta["variables"]))]
    except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, ValueError, MemoryError, ...
        raise CheckpointError(f"Unreadable checkpoint {path}: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    problem = _meta_problem(meta)
    if problem:
        raise CheckpointError(f"Unreadable checkpoint {path}: {problem}.")
    recorded, here = meta.get("identity"), identity(path)
    if recorded is not None and here is not None and recorded != here:
        raise CheckpointError(f"Checkpoint {path} belongs to another execution ({recorded.get('trial_id')} "
                              f"execution {recorded.get('execution')}).")
    model_count = len(variables) - len(model.optimizer.variables)
    expected = [[v.path, list(v.shape)] for v in variables]
    try:
        found = list(zip(structure([p for p, _ in meta["variables"]], model_count), [s for _, s in meta["variables"]]))
    except (TypeError, ValueError, AttributeError):
        raise CheckpointError(f"Unreadable checkpoint {path}: malformed variable list.") from None
    wanted = list(zip(structure([p for p, _ in expected], model_count), [s for _, s in expected]))
    if found != wanted or any(list(a.shape) != s for a, (_, s) in zip(values, expected)):
        raise CheckpointError(f"Checkpoint {path} does not fit the model of this execution.")
    for variable, value in zip(variables, values):
        variable.assign(value)
    return int(meta["epochs_done"]), meta["history"]


def _meta_problem(meta):
    """What is wrong with a checkpoint's metadata, or None."""
    if not isinstance(meta, dict):
        return "metadata is not an object"
    done, history = meta.get("epochs_done"), meta.get("history")
    if not isinstance(done, int) or isinstance(done, bool) or done < 0:
        return "invalid epochs_done"
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        return "invalid history"
    if max((len(v) for v in history.values()), default=0) != done:
        return f"its history does not hold its {done} epochs"
    if not isinstance(meta.get("identity"), (dict, type(None))):
        return "invalid identity"
    return None


def remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
