"""What the bench JSON records about the machine a measurement ran on."""

from __future__ import annotations

import os
import platform


def cpu_machine(load_before: tuple[float, float, float], library: str = "torch") -> dict:
    """CPU count, platform, Python and ``library``'s version (``torch`` or ``faiss``), and the load
    average before and now (the cores are shared, so the load says how quiet the run was)."""
    module = __import__(library)
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        library: module.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def faiss_machine(load_before: tuple[float, float, float]) -> dict:
    """:func:`cpu_machine` with FAISS's version, for the index and service benches."""
    return cpu_machine(load_before, "faiss")
