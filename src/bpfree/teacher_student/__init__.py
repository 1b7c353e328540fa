"""Teacher–student runs in continuous time: a fixed chain (the teacher) drives a student's targets.

    teacher = bpfree.models.bptt.ForwardChain(teacher_layers)
    student = GLEStudent(student_layers, beta, keras.optimizers.Adam, learning_rate)   # or BPTTStudent
    result = run_recorded(exp_dir, "lagline", config, teacher, student, x, params=..., param_error=..., plot=...)

The input x (batch, steps, in) is cut into chunks; in each chunk the teacher's per-step outputs are the
student's per-step targets, and the student learns from `init_steps` on. Every chunk is one "epoch" of an
execution record (`RunLog`), so `bpfree.results.load(exp_dir)` reads a run like any search.

- `students`: `GLEStudent` (a `GLENetwork`, an optimizer step every dt) and `BPTTStudent` (truncated BPTT).
- `loop`: `chunks` and `teacher_student_loop`, the chunked run with its divergence and failure statuses.
- `run_log`: `RunLog`, the execution record of one run.
- `recorded`: `run_recorded`, one run with its record, figure and summary.
- `figure`: `plot_run`, the loss and the parameters against time.
"""

from bpfree.teacher_student.figure import plot_run
from bpfree.teacher_student.loop import chunks, teacher_student_loop, whole_windows
from bpfree.teacher_student.recorded import run_recorded
from bpfree.teacher_student.run_log import RunLog
from bpfree.teacher_student.students import BPTTStudent, GLEStudent

__all__ = ["BPTTStudent", "GLEStudent", "RunLog", "chunks", "plot_run", "run_recorded", "teacher_student_loop",
           "whole_windows"]
