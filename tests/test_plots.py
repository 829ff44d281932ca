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


def test_a_loss_over_orders_of_magnitude_is_drawn_on_a_log_axis(tmp_path, monkeypatch) -> None:
    """A loss from 0.2 down to 6e-5 lay flat on zero after its first epoch on a linear axis."""
    from nlp182 import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig.axes[0].get_yscale()))
    plots.loss_curves({"train": [0.2, 0.01, 6e-5], "valid": [0.3, 0.02, 1e-4]}, tmp_path / "a.png")
    plots.loss_curves({"train": [3.0, 2.0, 1.5]}, tmp_path / "b.png")
    plots.loss_curves({"train": [0.5, 0.0, -0.1]}, tmp_path / "c.png")  # not all positive: linear
    plots.loss_curves({"train": [0.2, 6e-5]}, tmp_path / "d.png", log_y=False)  # the caller's choice
    assert drawn == ["log", "linear", "linear", "linear"]


def test_series_that_coincide_are_drawn_in_styles_that_both_show(tmp_path, monkeypatch) -> None:
    """Adam's and AdamW's losses differ by 0.3%: one solid line over the other hid it."""
    from nlp182 import plots

    styles = []
    monkeypatch.setattr(plots, "save_figure",
                        lambda fig, path: styles.extend(line.get_linestyle() for line in fig.axes[0].lines))
    plots.loss_curves({"adam": [1.0, 0.5], "adamw": [1.0, 0.501], "sgd": [1.0, 0.9]}, tmp_path / "x.png")
    assert len(set(styles)) == 3

