"""`SearchProgress`: a live progress line for a search on a terminal, nothing elsewhere.

    dfa-500-500-tanh-… ×4  epoch 7/10  val_error_rate 12.3  ETA 0:00:09 | grid 24/72 executions, ETA 0:04:10

One line, rewritten in place after every epoch of the running execution (or group of executions trained
together): its epoch, the objective (the mean over the executions of a group), the time left for it (its
mean epoch time × the epochs left) and for the grid (the mean time of the executions this process ran
× those left). The line is cleared before the search logs a line of its own, so the log (one line per
execution) reads as without it. Written only when the stream is a terminal: a redirected log, `nohup`, a
test, or a worker of a distributed search (whose output is a log) get nothing.

Hand-written rather than `keras.utils.Progbar`: Progbar shows numeric values averaged over its steps and
one ETA; this line needs the grid's ETA beside the execution's, and a text label.
"""

import math
import shutil
import sys
import time


class SearchProgress:
    def __init__(self, objective, num_epochs, total_executions, done_executions=0, stream=None, enabled=None):
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) if enabled is None else bool(enabled)
        self.objective = objective
        self.num_epochs = num_epochs
        self.total = total_executions
        self.done = done_executions
        self.ran, self.ran_seconds = 0, 0.0
        self._label, self._size, self._start, self._first_epoch = "", 1, None, 0
        self._shown = False

    def start(self, label, size, first_epoch=0):
        """An execution (``size`` 1) or a group of ``size`` executions starts training at `first_epoch`."""
        self._label, self._size, self._first_epoch = label, size, first_epoch
        self._start = time.monotonic()

    def epoch(self, epoch, values):
        """Epoch `epoch` (0-based) ended; `values`: the objective of each execution still training."""
        if not self.enabled or self._start is None:
            return
        elapsed = time.monotonic() - self._start
        epochs = epoch + 1 - self._first_epoch
        left = elapsed / max(epochs, 1) * (self.num_epochs - epoch - 1)
        finite = [v for v in values if v is not None and math.isfinite(v)]
        shown = f"{sum(finite) / len(finite):.4g}" if finite else "–"
        group = f" ×{self._size}" if self._size > 1 else ""
        grid = self._grid_eta(elapsed + left)
        self._write(f"{self._label}{group}  epoch {epoch + 1}/{self.num_epochs}  {self.objective} {shown}  "
                    f"ETA {_clock(left)} | grid {self.done}/{self.total} executions{grid}")

    def finish(self, executions):
        """The running execution(s) ended: `executions` of them are done."""
        if self._start is not None:
            self.ran += executions
            self.ran_seconds += time.monotonic() - self._start
        self.done += executions
        self._start = None
        self.clear()

    def clear(self):
        """Clears the line (before the search prints a line of its own)."""
        if self._shown:
            self.stream.write("\r" + " " * _width() + "\r")
            self.stream.flush()
            self._shown = False

    def _grid_eta(self, current_total):
        per_execution = (self.ran_seconds + current_total) / (self.ran + self._size)
        left = max(self.total - self.done - self._size, 0) * per_execution
        return f", ETA {_clock(left)}"

    def _write(self, text):
        width = _width()
        self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._shown = True


def _width():
    return shutil.get_terminal_size((100, 20)).columns  # COLUMNS first, then the terminal


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
