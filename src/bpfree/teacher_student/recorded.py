"""`run_recorded`: one teacher–student run with its execution record, its figure and a summary line.

The run is `teacher_student_loop` over a `RunLog` at `<exp_dir>/records/<model>/execution_<seed>.json`;
every logged chunk records the student's parameters and their largest relative distance from the
teacher's (`param_error`); the figure is `<exp_dir>/<name>_<model>_seed<seed>.png`.
"""

from bpfree import optimizers
from bpfree.teacher_student.loop import teacher_student_loop
from bpfree.teacher_student.run_log import RunLog


def run_recorded(exp_dir, name, config, teacher, student, x, *, params, param_error, plot, log=print):
    """Runs `student` against `teacher` on x as `config` says (model, seed, dt, init_steps, chunk_steps,
    train_steps, window_steps, learning_rate, plot_every, hparams()).

    Args:
        params: () -> {name: value} of the student's learned parameters now.
        param_error: params -> max relative deviation from the teacher.
        plot: (history, path) -> None, draws the run so far.

    Returns the last logged values with "record", "figure" and "status". The first log line names the
    student's optimizer (`bpfree.optimizers.describe`: for an Adam, where it adds ε).
    """
    run_log = RunLog(exp_dir, config.model, config.seed, config.hparams())
    figure = run_log.figure_path(f"{name}_{config.model}_seed{config.seed}")
    log(f"{name} {config.model} seed {config.seed}: {optimizers.describe(student.optimizer)}, lr "
        f"{config.learning_rate:g}, window {config.window_steps} steps, {config.init_steps} init + "
        f"{config.train_steps} training steps; starts at {_fmt(params())}")

    def observe():
        now = params()
        return {**now, "param_error": param_error(now)}

    final = teacher_student_loop(
        teacher, student, x, init_steps=config.init_steps, chunk_steps=config.chunk_steps, dt=config.dt,
        run_log=run_log, observe=observe, log=log, plot_every=config.plot_every,
        on_plot=lambda: plot(run_log.history, figure))
    learned = {key: final[key] for key in params()}
    log(f"final ({name} {config.model}, seed {config.seed}): loss {final['loss']:.3e}, {_fmt(learned)}, "
        f"param_error {final['param_error']:.2%}; records in {run_log.record.path}, figure {figure}")
    return {**final, "record": run_log.record.path, "figure": figure, "status": run_log.record.status}


def _fmt(values):
    return ", ".join(f"{key} {value:.4f}" for key, value in values.items())
