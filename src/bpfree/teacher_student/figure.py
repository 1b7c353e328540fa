"""`plot_run`: a teacher–student run against time, the loss and the student's parameters with the
teacher's values dashed and the start of learning marked."""

import numpy as np

from bpfree import figures

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_run(history, panels, *, t_learn, title, path):
    """Draws the loss (log scale) and one panel per (ylabel, [(key, teacher value, label)]) against the
    history's "time"; saves a PNG at `path`."""
    plt = figures.pyplot()
    t = np.asarray(history["time"], dtype=float)
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(4.4 * (1 + len(panels)), 3.8))
    loss = np.asarray(history["loss"], dtype=float)
    axes[0].semilogy(t, np.where(loss > 0, loss, np.nan), color="k")
    axes[0].set_ylabel("MSE (mean per step over interval)")
    for ax, (ylabel, curves) in zip(axes[1:], panels):
        for (key, teacher, label), color in zip(curves, COLORS):
            ax.plot(t, history[key], color=color, label=label)
            ax.axhline(teacher, color=color, ls="--", lw=1)
        ax.set_ylabel(f"{ylabel} (teacher dashed)")
        ax.legend(fontsize=8)
    for ax in axes:
        ax.axvline(t_learn, color="0.6", lw=0.8)
        ax.set_xlabel("time")
    fig.suptitle(title)
    fig.tight_layout()
    figures.save(fig, path)
    plt.close(fig)
