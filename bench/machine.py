"""What the bench JSON records about the machine a FAISS measurement ran on."""

from __future__ import annotations

import os
import platform

import faiss


def faiss_machine(load_before: tuple[float, float, float]) -> dict:
    """CPU count, platform, Python and FAISS versions, and the load average before and now (the
    cores are shared, so the load says how quiet the run was)."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
