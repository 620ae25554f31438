"""The documentation's plot script runs and writes a real PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT

pytest.importorskip("matplotlib")


def test_time_to_quality_plot_is_drawn(tmp_path):
    data = tmp_path / "curves.json"
    data.write_text(json.dumps({"recipe a": [[64, 0.1], [256, 0.6]], "recipe b": [[128, 0.5], [512, 0.9]]}))
    output = tmp_path / "plot.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "time_to_quality.py"), str(data), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(output) as picture:
        assert picture.size == (640, 400)
        assert len(set(picture.convert("RGB").getdata())) > 10  # lines and text, not a blank canvas
