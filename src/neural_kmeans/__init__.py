"""neural-kmeans: clustering with a neural network in place of K-means' distance step.

The package is layered; each layer imports only from the layers below it:

* :mod:`neural_kmeans.core`: the loop and its steps (samples, initialization,
  training, assignment, centroids), the networks, the checks, the metrics;
* :mod:`neural_kmeans.representation`: the learned space of ``features="learned"``;
* :mod:`neural_kmeans.io`: data sets, downloads, model files, checkpoints;
* :mod:`neural_kmeans.estimator`: :class:`NeuralKMeans`, the scikit-learn face;
* :mod:`neural_kmeans.app`: the command line, experiments, figures and reports.

Importing the package does nothing else: the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.7.0"
__all__ = ["NeuralKMeans", "__version__", "evaluate", "load_dataset"]

_LAZY = {
    "NeuralKMeans": "neural_kmeans.estimator",
    "load_dataset": "neural_kmeans.io.datasets",
    "evaluate": "neural_kmeans.core.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neural_kmeans' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
