"""notebooks/example.ipynb runs top to bottom (tiny settings)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_example_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFREE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("BPFREE_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "example.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}}).execute()
    assert (tmp_path / "curves.png").stat().st_size > 1000
    outputs = "".join(str(o.get("data", {}).get("text/plain", "")) for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "dfa" in outputs and "val_error_rate" in outputs
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
