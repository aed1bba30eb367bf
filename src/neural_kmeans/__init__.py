"""neural-kmeans: clustering with a neural network in place of K-means' distance step."""

import os

# Idle OpenMP threads sleep instead of spinning (unless the user chose otherwise). With
# spinning threads, a CPU that other programs keep busy slows each small parallel
# region down to a scheduler time slice: measured here, the CNN's inference ran 3.6x
# slower on a busy 2-core machine. It takes effect when torch is imported after this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from neural_kmeans.estimator import NeuralKMeans

__version__ = "0.1.0"
__all__ = ["NeuralKMeans", "__version__"]
