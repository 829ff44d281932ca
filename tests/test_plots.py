"""Figures are drawn without pyplot: the program's own matplotlib backend is left as it was."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_drawing_leaves_the_programs_backend_and_pyplot_alone(tmp_path) -> None:
    """A notebook's inline backend stopped working once the package was imported (it switched the
    process to Agg). Import the modules that draw, draw, and look."""
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        import nlp182.train, nlp182.vision.visualize, nlp182.captioning.overlay, nlp182.course.optim_figures
        from nlp182.plots import loss_curves
        loss_curves({{"train": [3.0, 2.0, 1.5]}}, r"{tmp_path / 'loss.png'}")
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["svg", "False"]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
