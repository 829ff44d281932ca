"""2-D maps of word vectors: PCA of a set of (unit) vectors, for a run's map and the service's
neighbourhood map alike.

As embedding explorers draw it: the ``(n, D)`` vectors are centred and projected on their
first two principal axes (from the SVD, in float64). Each axis's sign is fixed so that its largest
loading is positive (scikit-learn's ``svd_flip`` convention), so the same words always give the
same picture. With one dimension, or fewer than three points, the missing axis is 0. Points with a
nan or inf value (vectors that reached the service without the ``nlp182 index`` check) are left
out of the fit and drawn at the centre, ``(0, 0)``: the map still answers, and the finite points
are placed as they would be without them.
"""

from __future__ import annotations

import numpy as np


def pca_2d(points: np.ndarray) -> np.ndarray:
    """``(n, 2)`` float64 coordinates of ``points`` ``(n, D)`` on their first two principal axes.

    With fewer than 3 points or a rank below 2 the missing axes are 0; points that are not finite
    are ``(0, 0)``.
    """
    data = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(data).all(axis=1)
    coords = np.zeros((data.shape[0], 2))
    if not finite.any():
        return coords
    centred = data[finite] - data[finite].mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    for axis in range(min(2, axes.shape[0])):
        if singular[axis] <= 1e-12 * max(singular[0], 1e-300):
            continue
        direction = axes[axis] * np.sign(axes[axis][np.argmax(np.abs(axes[axis]))])
        coords[finite, axis] = centred @ direction
    return coords
