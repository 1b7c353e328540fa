"""The live progress line: on a terminal after every epoch (epoch, objective, the execution's and the
grid's ETA), cleared before each log line; nothing when the output is not a terminal."""

import io
import sys

from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning.progress import SearchProgress

SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-3, 1e-2], "dropout": [0.0]}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_search_on_a_terminal_shows_epochs_and_etas_and_clears_the_line_for_its_log(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "300")
    lines = []

    def log(line):
        lines.append((line, terminal.getvalue()))

    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=3, use_xla=False)
    for members in (0, 2):  # through fit, and as members
        run_search(str(tmp_path / str(members)), config, SearchSpace.create(SPACE), log=log, engine=engine_for(members))
    shown = terminal.getvalue()
    assert "\r" in shown and "epoch 3/3  val_error_rate " in shown and " | grid 1/2 executions, ETA 0:" in shown
    assert "bp-16-tanh-bwortho-lr0.01-" in shown and "×2  epoch 1/3" in shown  # the group of two
    for line, before in lines:  # every log line comes after a cleared progress line
        if " execution " in line:
            assert before.endswith("\r"), repr(before[-80:])


def test_nothing_is_shown_when_the_output_is_not_a_terminal():
    stream = io.StringIO()
    progress = SearchProgress("loss", 5, 10, stream=stream)
    progress.start("bp-16", 1)
    progress.epoch(0, [0.5])
    progress.finish(1)
    assert stream.getvalue() == "" and not progress.enabled


def engine_for(members):
    """0: each execution through fit; n: programs of up to n members."""
    return EngineOptions(fit=True) if members == 0 else EngineOptions(members=members)
