"""The estimator layer: :class:`NeuralKMeans`, a scikit-learn estimator over the core loop
(:mod:`~neural_kmeans.estimator.kmeans`), and its model files
(:mod:`~neural_kmeans.estimator.persistence`)."""

from neural_kmeans.estimator.kmeans import NeuralKMeans

__all__ = ["NeuralKMeans"]
