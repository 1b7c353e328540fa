"""One resumable training run of an experiment script (`mnist1d`, `gsc`): a record, a model file and a
figure beside it, each rewritten atomically after every epoch; the same command again resumes.

    run = EpochRun.open(exp_dir, name, seed, hparams, epochs, build, log)   # build() → a compiled model
    if run.done: return run.record.data
    run.fit(lambda callbacks: model.fit(..., initial_epoch=run.epochs_done, callbacks=callbacks))

Each epoch's row holds the loss and error rate, the evaluation split's loss and accuracy (in percent,
``<split>_loss`` / ``<split>_acc``: the script's own split, "val" or "test"), the learning rate and the
epoch's wall and CPU seconds.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from bpfree import figures, io, records


@dataclasses.dataclass
class EpochRun:
    """`record` (its `ExecutionRecord`), `model` (built or loaded; None once done) and where they live."""

    record: object
    model: object
    model_path: str
    figure_path: str
    split: str  # "val" or "test": which split the accuracy is measured on, named in the record's keys
    title: str
    log: object
    done: bool = False

    @classmethod
    def open(cls, exp_dir, name, seed, hparams, epochs, build, log, split, title):
        """Resumes `name`'s run of `seed` from its record and model file, or starts it (the global seed set,
        `build()` called) when either is missing; `done` when its record completed `epochs` epochs."""
        record_path = records.execution_path(exp_dir, name, seed)
        paths = dict(model_path=os.path.join(exp_dir, f"{name}_seed{seed}.keras"),
                     figure_path=os.path.join(exp_dir, f"{name}_seed{seed}.png"), split=split, title=title, log=log)
        if os.path.exists(record_path) and os.path.exists(paths["model_path"]):
            record = records.ExecutionRecord.resume(record_path)
            if record.status == "completed" and record.epochs_done >= epochs:
                log(f"{record_path}: already completed ({record.epochs_done} epochs).")
                return cls(record, None, done=True, **paths)
            model = keras.models.load_model(paths["model_path"])
            log(f"Resuming {name} seed {seed} after epoch {record.epochs_done}.")
        else:
            keras.utils.set_random_seed(seed)
            record = records.ExecutionRecord(exp_dir, name, seed, hparams, seed=seed)
            model = build()
        return cls(record, model, **paths)

    @property
    def epochs_done(self):
        return self.record.epochs_done

    def fit(self, fit):
        """Calls `fit(callbacks)` (the model's own `fit` with the run's callbacks added) and ends the record:
        completed, diverged (a loss not finite), or failed with the exception (raised again)."""
        self.record.start(time.monotonic())
        try:
            fit([_Recorder(self)])
        except BaseException as e:
            self.record.finish("failed", error=f"{type(e).__name__}: {e}", wall_clock=time.monotonic())
            raise
        history = self.record.data["history"]
        diverged = not all(records.is_finite(v) for v in history.get("loss", []))
        self.record.finish("diverged" if diverged else "completed", wall_clock=time.monotonic())
        acc = history.get(f"{self.split}_acc", [])
        if acc:
            self.log(f"done: final {_split_name(self.split)} acc {acc[-1]:.2f} %, best {max(acc):.2f} % (epoch "
                     f"{int(np.argmax(acc)) + 1}), wall time {self.record.data['wall_time']:.0f} s")
        return self.record.data


def plot_accuracy(history, path, title, split):
    """The `split`'s accuracy against epoch, as a PNG at `path`."""
    plt = figures.pyplot()
    acc = history.get(f"{split}_acc", [])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(acc) + 1), acc, marker=".")
    ax.set(xlabel="epoch", ylabel=f"{_split_name(split)} accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figures.save(fig, path)
    plt.close(fig)


class _Recorder(keras.callbacks.Callback):
    """Appends each epoch's row to the run's record, then rewrites its model file and figure, and says it."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        run, logs, split = self.run, dict(logs or {}), self.run.split
        row = {"loss": logs.get("loss"), "error_rate": logs.get("error_rate"),
               f"{split}_loss": logs.get("val_loss"), f"{split}_acc": 100.0 - logs.get("val_error_rate", np.nan),
               "current_lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "epoch_seconds": time.perf_counter() - self.t0, "epoch_cpu_seconds": time.process_time() - self.c0}
        run.record.append_epoch(row, wall_clock=time.monotonic())
        io.write_atomic(run.model_path, self.model.save, ".keras")
        plot_accuracy(run.record.data["history"], run.figure_path, run.title, split)
        lr = f"{row['current_lr']:.3e}" if split == "val" else f"{row['current_lr']:.2e}"
        run.log(f"epoch {run.record.epochs_done:3d}: loss {row['loss']:.4f}  {split} loss {row[f'{split}_loss']:.4f}  "
                f"{split} acc {row[f'{split}_acc']:.2f} %  lr {lr}  {row['epoch_seconds']:.1f} s "
                f"(cpu {row['epoch_cpu_seconds']:.1f} s)")


def _split_name(split):
    return {"val": "validation", "test": "test"}[split]
