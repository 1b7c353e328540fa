"""The chunked teacher–student loop: the teacher's outputs are the student's per-step targets.

The input x (batch, steps, in) is tiled into chunks [a, b) of `chunk_steps` steps, those before
`init_steps` and those after cut apart so that learning starts on a chunk boundary; for every chunk

    y = teacher.outputs(x[:, a:b]),   loss = student.run(x[:, a:b], y),   record {time b·dt, learning, loss, observe()}.

A non-finite loss ends the run as "diverged" (a property of the point); an exception ends it as
"failed" and propagates.
"""

import math
import time


def chunks(start, stop, size):
    """[(a, b)] tiling [start, stop) in pieces of `size` (the last one shorter)."""
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def whole_windows(steps, window):
    """`steps` rounded up to a whole number of `window`-step windows."""
    return int(math.ceil(steps / window)) * window


def teacher_student_loop(teacher, student, x, *, init_steps, chunk_steps, dt, run_log, observe, log=print,
                         on_plot=None, plot_every=0):
    """Runs `student` against `teacher` (a `ForwardChain`) over x (batch, steps, in), learning from
    `init_steps` on; one `run_log` epoch per chunk with time, learning, loss and `observe()` (a dict of
    the student's parameters and derived values). `on_plot()` every `plot_every` chunks and at the end.
    Returns the last epoch's values."""
    total = x.shape[1]
    t0 = time.monotonic()
    bounds = chunks(0, init_steps, chunk_steps) + chunks(init_steps, total, chunk_steps)
    try:
        for k, (a, b) in enumerate(bounds):
            if a == init_steps:
                student.start_learning()
            xc = x[:, a:b]
            loss = student.run(xc, teacher.outputs(xc).numpy())
            logs = {"time": b * dt, "learning": float(a >= init_steps), "loss": loss, **observe()}
            run_log.append(logs)
            if not math.isfinite(loss):
                run_log.finish("diverged", error=f"loss {loss} at t = {b * dt:g}")
                log(f"diverged at t = {b * dt:g}")
                break
            if k % 10 == 0 or b == total:
                values = "  ".join(f"{key} {v:.4f}" for key, v in logs.items() if key not in ("time", "learning", "loss"))
                log(f"t {b * dt:8.1f}  loss {loss:.3e}  {values}  ({time.monotonic() - t0:.0f} s)")
            if on_plot and plot_every and k % plot_every == plot_every - 1:
                on_plot()
        else:
            run_log.finish("completed")
    except BaseException as e:
        run_log.finish("failed", error=f"{type(e).__name__}: {e}")
        raise
    if on_plot:
        on_plot()
    return {key: values[-1] for key, values in run_log.history.items()}
