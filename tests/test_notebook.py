"""notebooks/example.ipynb runs top to bottom (tiny settings) and its figure shows curves."""

import json
import math
import os

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run after the notebook's first cell: every figure `bpfree.results.plots` saves is described (per axes, its
# lines' point counts and y values; legend handles are not axes lines) before it is written and closed.
CAPTURE = """
import bpfree.results.plots as _plots
_FIGURES = []
_save_figure = _plots.save_figure

def _describe(fig, path):
    _FIGURES.append({"path": str(path), "axes": [
        {"lines": [{"label": line.get_label(), "x": [float(v) for v in line.get_xdata()],
                    "y": [float(v) for v in line.get_ydata()]} for line in ax.get_lines()],
         "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()} for ax in fig.axes]})
    return _save_figure(fig, path)

_plots.save_figure = _describe
"""
REPORT = "import json\nprint('FIGURES=' + json.dumps(_FIGURES))"


def test_example_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFREE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("BPFREE_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "example.ipynb"), as_version=4)
    first_code = next(k for k, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell(CAPTURE))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert (tmp_path / "curves.png").stat().st_size > 1000
    outputs = "".join(str(o.get("data", {}).get("text/plain", "")) for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "dfa" in outputs and "val_error_rate" in outputs

    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    figures = json.loads(printed.split("FIGURES=", 1)[1])
    (curves,) = [f for f in figures if f["path"].endswith("curves.png")]
    (axes,) = curves["axes"]
    assert axes["xlabel"] == "epoch" and axes["ylabel"] == "val_error_rate"
    labels = [line["label"] for line in axes["lines"]]
    assert any("bp" in label for label in labels) and any("dfa" in label for label in labels), labels
    for line in axes["lines"]:  # a curve of one point draws nothing: every curve is a line
        assert len(line["x"]) >= 2 and len(set(line["x"])) == len(line["x"]), line
        assert all(math.isfinite(v) for v in line["y"]), line
