"""The Python API in a real Jupyter kernel: the cell shows the progress bar and the pictures, and
nothing that describes the app's design (no warnings, tips, notices or layer tables)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_a_notebook_cell_shows_the_progress_bar_and_the_pictures_only(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import maxclass_lightning\n"
            "from tests.networks import tiny_imagenet_classifier\n"
            "network = tiny_imagenet_classifier()\n"
            "result = maxclass_lightning.visualize(network, 'pomeranian', recipe='seed', steps=3, image_size=32,\n"
            f"                                     logger=False, default_root_dir={str(tmp_path)!r})\n"
            "result"
        )
    ]
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    outputs = notebook.cells[0].outputs
    streams = {"stdout": "", "stderr": ""}
    for output in outputs:
        if output.output_type == "stream":
            streams[output.name] += output.text
    assert streams["stderr"] == "", streams["stderr"]
    assert "Epoch 0: 100%" in streams["stdout"] and "prob=" in streams["stdout"]
    for noise in ("Tip", "Warning", "Seed set", "GPU available", "override existing callbacks", "Params"):
        assert noise not in streams["stdout"], noise
    (result,) = [output for output in outputs if output.output_type == "execute_result"]
    assert result.data["image/png"] and result.data["text/plain"].startswith("Visualization(1 images: 259_pomeranian")
    # The run still wrote its pictures and checkpoint where it was told to.
    assert list(tmp_path.rglob("*.ckpt"))
