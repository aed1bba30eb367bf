"""neural-kmeans: clustering with a neural network in place of K-means' distance step."""

from neural_kmeans.estimator import NeuralKMeans

__version__ = "0.1.0"
__all__ = ["NeuralKMeans", "__version__"]
