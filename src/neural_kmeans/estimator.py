"""The ``NeuralKMeans`` estimator: K-means with a neural network as the distance step.

The loop, one module per step:

1. :mod:`~neural_kmeans.initialization` picks the K first centroids;
2. :mod:`~neural_kmeans.training` trains the network on them (centroid k is class k);
3. :mod:`~neural_kmeans.assignment` gives every sample the network's predicted class;
4. :mod:`~neural_kmeans.centroids` moves each centroid to the mean of its members;

and back to 2 until the assignment stops changing or ``max_iter`` is reached.

With ``features="learned"`` the same loop runs in a learned space, its network trained
on each cluster's most confident members: :mod:`~neural_kmeans.representation` and
:mod:`~neural_kmeans.self_labelling`.
"""

from __future__ import annotations

import functools
import numbers
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from neural_kmeans import distributed
from neural_kmeans.assignment import Assignment, assign_and_accumulate, predict_batches
from neural_kmeans.batches import SampleBatches
from neural_kmeans.centroids import (
    centroid_means,
    repair_empty_clusters,
    squared_distances_to_assigned,
)
from neural_kmeans.checkpoint import FitCheckpoints, interrupt_handlers
from neural_kmeans.initialization import initial_centroids
from neural_kmeans.networks import (
    LEARNED_NETWORK,
    Standardize,
    build_network,
    resolve_network_name,
)
from neural_kmeans.serialization import load_model, save_model
from neural_kmeans.training import make_optimizer, train_on_centroids
from neural_kmeans.validation import (
    InvalidParameterError,
    check_data_for_params,
    check_device,
    check_finite_centroids,
    check_network_outputs,
    check_params,
    check_training_loss,
    resolve_image_shape,
    to_numpy_samples,
)

#: ``callback(iteration, record, model) -> stop?``: called after every iteration with
#: that iteration's history record; returning True stops the loop.
# Built-in networks that read flat rows even when the samples are images.
ROW_NETWORKS = ("mlp", "linear", "nearest-centroid")

CNN_CPU_BATCH_SIZE = 256
LEARNED_BATCH_SIZE = 1024
DEFAULT_BATCH_SIZE = 4096
CNN_LEARNING_RATE = 1e-3
DEFAULT_LEARNING_RATE = 1e-2
# Built-in networks that see standardized inputs (a fixed first layer): they learn far
# better from K points when the features are centred and of unit scale.
STANDARDIZED_NETWORKS = ("mlp", "linear")
# Samples on which each iteration's network is checked for non-finite outputs.
PROBE_SAMPLES = 256

Callback = Callable[[int, dict, "NeuralKMeans"], "bool | None"]


class NeuralKMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means whose distance step is a neural network trained on the centroids.

    Each iteration trains a classifier on the K centroids (centroid k labelled k),
    gives every sample the network's predicted class as its cluster, and moves each
    centroid to the mean of its members, until the assignment stops changing.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters K.
    network : {"auto", "cnn", "mlp", "linear", "nearest-centroid"} or callable, default="auto"
        The classifier. ``"cnn"`` is the reference notebook's network (images only);
        ``"nearest-centroid"`` is a fixed linear layer that makes the loop exactly
        Lloyd's K-means; a callable ``(input_shape, n_clusters) -> torch.nn.Module``
        builds your own. ``"auto"`` is ``"cnn"`` for images, ``"mlp"`` for rows.
    init : {"random", "k-means++"} or array of shape (K, n_features), default="k-means++"
        First centroids: K distinct random samples (the reference notebook),
        scikit-learn's k-means++ seeding, or the given centroids (input units).
    steps_per_iter : int, default=10
        Gradient steps on the K centroids per iteration. The notebook's code took 1,
        which leaves a freshly built CNN nearly untrained; 10 reach the level of its
        published figures.
    optimizer : {"adam", "sgd"}, default="adam"
    learning_rate : float, optional
        The optimiser's step size. By default 1e-3 for the CNN (Keras' Adam default,
        as the notebook) and 1e-2 for the other networks, which learn K points fast.
    max_iter : int, default=20
        Most iterations of the loop.
    tol : float, default=0.0
        Stop when the fraction of samples whose cluster changed is at most ``tol``.
    batch_size : int, optional
        Samples per inference batch. By default 256 for the CNN on the CPU (its
        feature maps then stay in cache) and 4096 otherwise (fewer, larger matrix
        products: light networks are bound by memory traffic and per-batch overhead).
    image_shape : tuple of int, optional
        (h, w) or (c, h, w) of flat rows that are images; 784 features read as 28x28.
    device : str or torch.device, default="auto"
        ``"auto"`` takes CUDA when present, else the CPU.
    random_state : int, numpy Generator or RandomState, optional
        Seeds the initial centroids, the network's weights and dropout. The global
        numpy and torch random states are neither read nor changed.
    verbose : int, default=0
        Print one line per iteration when positive.
    record_centroids : bool, default=False
        Keep each iteration's centroids in ``history_`` (for figures).
    callbacks : callable or list of callables, optional
        ``callback(iteration, record, model) -> stop?`` after every iteration.
    features : {"pixels", "learned"}, default="pixels"
        The space the loop runs in. ``"pixels"``: the samples themselves, the faithful
        loop above. ``"learned"``: a learned representation (an autoencoder's codes,
        their k-nearest-neighbour graph laid out by UMAP; Gaussian-mixture first
        clusters), with the network trained on each cluster's most confident members
        instead of the lone centroid (self-labelling); see
        :mod:`neural_kmeans.self_labelling`. Needs umap-learn (the ``learned`` extra).
        With ``"learned"``, ``network``, ``init``, ``steps_per_iter``, ``optimizer``,
        ``learning_rate``, ``max_iter``, ``tol`` and ``checkpoint_dir`` (refused) do
        not apply: its settings are ``learned_params``.
    learned_params : dict, optional
        Overrides of the learned mode's defaults, by name
        (:class:`~neural_kmeans.self_labelling.LearnedParams`), e.g.
        ``{"autoencoder_epochs": 5}``.
    checkpoint_dir : str or os.PathLike, optional
        Write the loop's whole state to ``checkpoint_dir/checkpoint.safetensors`` after
        every iteration (atomically), and let SIGINT/SIGTERM stop the fit cleanly after
        the current iteration (:class:`~neural_kmeans.checkpoint.FitInterrupted`);
        ``fit(X, resume=True)`` continues from it. See :mod:`neural_kmeans.checkpoint`.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (K, n_features)
        Centroids in the input's units: the means of the clusters in ``labels_``
        (except where the last iteration repaired an empty cluster: as in
        scikit-learn, its centroid moved onto a far sample, whose label stays).
    labels_ : ndarray of shape (n_samples,)
        The cluster of each training sample, as the final network predicts it, so
        ``predict(X_train)`` equals ``labels_``.
    inertia_ : float
        Sum of squared distances of the samples to their cluster's centroid.
    n_iter_ : int
        Iterations run.
    network_ : torch.nn.Module
        The trained network that gave ``labels_``.
    history_ : list of dict
        Per iteration: ``iteration``, ``loss``, ``changed`` (fraction of samples whose
        cluster changed), ``inertia``, ``sizes`` (K cluster sizes), ``seconds``,
        ``empty_repaired`` and, with ``record_centroids``, ``centroids`` (K, n_features).
    initial_centers_ : ndarray of shape (K, n_features)
        The first centroids, in the input's units.
    image_shape_ : tuple of int or None
        (c, h, w) of the samples when they are images.
    n_features_in_ : int
        Number of features of one sample (h·w·c for images).
    converged_ : bool
        Whether the loop stopped because the assignment settled (``changed <= tol``).
    embedding_ : ndarray of shape (n_samples, n_components)
        ``features="learned"`` only: the training samples in the learned space
        (UMAP's layout), where the loop's centroids move.
    timings_ : dict of str to float
        ``features="learned"`` only: seconds of each stage (``autoencoder``, ``knn``,
        ``umap``, ``mixture``, ``loop``, ``total``).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(500, centers=3, random_state=0)
    >>> model = NeuralKMeans(3, network="mlp", random_state=0).fit(X)
    >>> model.labels_.shape
    (500,)
    """

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        network: str | Callable = "auto",
        init: str | np.ndarray = "k-means++",
        steps_per_iter: int = 10,
        optimizer: str = "adam",
        learning_rate: float | None = None,
        max_iter: int = 20,
        tol: float = 0.0,
        batch_size: int | None = None,
        image_shape: tuple[int, ...] | None = None,
        device: str | torch.device = "auto",
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        verbose: int = 0,
        record_centroids: bool = False,
        callbacks: Callback | Sequence[Callback] | None = None,
        features: str = "pixels",
        learned_params: dict | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.network = network
        self.init = init
        self.steps_per_iter = steps_per_iter
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.record_centroids = record_centroids
        self.callbacks = callbacks
        self.features = features
        self.learned_params = learned_params
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None, *, resume: bool = False) -> NeuralKMeans:
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n, d), (n, h, w) or (n, c, h, w)
            Samples; uint8 is scaled to [0, 1] (per batch: the data is never copied).
        y : ignored
            Present for scikit-learn's API; labels are never read.
        resume : bool, default=False
            Continue from the checkpoint in ``checkpoint_dir`` (same data and
            parameters; ``max_iter``, ``verbose`` and ``callbacks`` may differ). The
            result equals an uninterrupted fit's.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Invalid parameters or data, before any work.
        neural_kmeans.checkpoint.CheckpointError
            A checkpoint that cannot be written, or resumed.
        neural_kmeans.checkpoint.FitInterrupted
            SIGINT or SIGTERM came during a fit with a ``checkpoint_dir``; the
            iteration's checkpoint is written.
        neural_kmeans.validation.DivergenceError
            A loss, network output or centroid that is not finite.
        """
        check_params(self)
        if resume and self.checkpoint_dir is None:
            raise InvalidParameterError(
                "resume=True needs checkpoint_dir: the folder the interrupted fit wrote its "
                "checkpoint to"
            )
        data = to_numpy_samples(X)
        self.n_features_in_ = int(np.prod(data.shape[1:]))
        self.image_shape_ = resolve_image_shape(data.shape[1:], self.image_shape)
        if self.features == "learned":
            return self._fit_learned(data)
        self._network_name = resolve_network_name(self.network, self.image_shape_ is not None)
        check_data_for_params(
            self, data.shape[1:], data.shape[0], self.image_shape_, self._network_name
        )
        self._dtype = self._compute_dtype(data)
        self.device_ = self._resolve_device()
        checkpoints = None
        if self.checkpoint_dir is not None:
            checkpoints = FitCheckpoints(self, data, resume=resume)
        samples = SampleBatches(data, self._input_shape(), self._dtype, self.device_)
        rng, torch_seed = self._random_generators()
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), interrupt_handlers(checkpoints):
            torch.manual_seed(torch_seed)
            self._fit(samples, rng, checkpoints)
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors + JSON header + SHA-256; no pickle).

        See :mod:`neural_kmeans.serialization`. A model with a callable ``network``
        is saved too, but loading it needs the factory again.
        """
        save_model(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        network: Callable | None = None,
        device: str | torch.device | None = None,
    ) -> NeuralKMeans:
        """Read a model written by :meth:`save`; it predicts as the saved model did.

        Parameters
        ----------
        path : str or os.PathLike
        network : callable, optional
            The network factory of a model fitted with a callable ``network``.
        device : str or torch.device, optional
            Overrides the saved ``device`` parameter (e.g. ``"cpu"``).

        Raises
        ------
        neural_kmeans.serialization.ModelFileError
            A damaged file, a file of another format version, or a missing factory.
        """
        return load_model(path, network=network, device=device, cls=cls)

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit and return ``labels_`` (a tensor on X's device when X is a tensor)."""
        return _like_input(self.fit(X).labels_, X)

    def predict(self, X: Any) -> Any:
        """The network's cluster for each sample.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n, ...) like the training samples

        Returns
        -------
        labels : ndarray (or tensor, for tensor input) of shape (n,), int64
        """
        samples = self._samples_for(X)
        labels = predict_batches(self.network_, samples, self._batch_size())
        return _like_input(labels.numpy(), X)

    def transform(self, X: Any) -> Any:
        """Cluster probabilities from the network's softmax, shape (n, K)."""
        samples = self._samples_for(X)
        probs = predict_batches(self.network_, samples, self._batch_size(), probabilities=True)
        return _like_input(probs.numpy(), X)

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of ``X`` under the network's clusters and the centroids."""
        samples = self._samples_for(X)
        labels = predict_batches(self.network_, samples, self._batch_size())
        centers = torch.as_tensor(self.cluster_centers_ * samples.scale, device=self.device_)
        distances = squared_distances_to_assigned(samples, labels, centers, self._batch_size())
        return -float(distances.sum()) / samples.scale**2

    # ------------------------------------------------------------------ the loop
    def _fit(
        self,
        samples: SampleBatches,
        rng: np.random.Generator,
        checkpoints: FitCheckpoints | None = None,
    ) -> None:
        device, scale = self.device_, samples.scale
        resumed = None if checkpoints is None else checkpoints.resumed
        if resumed is None:
            centroids = torch.as_tensor(
                initial_centroids(samples, self.n_clusters, self.init, rng),
                dtype=torch.float64,
                device=device,
            )
            self.initial_centers_ = (centroids / scale).cpu().numpy()
        else:
            self.initial_centers_ = resumed.initial_centers
        network = build_network(self._network_name, self._input_shape(), self.n_clusters)
        if self._network_name in STANDARDIZED_NETWORKS:
            network = torch.nn.Sequential(
                Standardize(*samples.mean_and_scale(self._batch_size())), network
            )
        network = network.to(device=device, dtype=self._dtype)
        optimizer = make_optimizer(network, self.optimizer, self._learning_rate())
        self.current_network_ = network  # for callbacks: the network as it trains
        callbacks = _as_list(self.callbacks)
        previous: torch.Tensor | None = None
        self.history_, self.converged_ = [], False
        first = 1
        if checkpoints is not None and resumed is not None:
            centroids, previous, first = checkpoints.restore(self, network, optimizer, rng)
            labels = previous
        # A few samples on which every iteration's network must give finite outputs.
        probe = samples.as_input(samples.flat_batch(0, min(samples.n_samples, PROBE_SAMPLES)))
        for iteration in range(first, self.max_iter + 1):
            started = time.perf_counter()
            # Step 2: train the classifier on the K labelled centroids.
            loss = train_on_centroids(
                network, optimizer, samples.as_input(centroids.to(self._dtype)), self.steps_per_iter
            )
            check_training_loss(iteration, loss, network, self._learning_rate())
            check_network_outputs(
                iteration, network, [samples.as_input(centroids.to(self._dtype)), probe]
            )
            # Step 3: every sample's cluster is the network's predicted class.
            assignment = self._assign(network, samples)
            labels = assignment.labels
            changed = 1.0 if previous is None else float((labels != previous).double().mean())
            # Step 4: move each centroid to the mean of its members.
            sizes = assignment.counts.cpu().tolist()
            new_centroids = centroid_means(assignment.sums, assignment.counts, centroids)
            repaired = repair_empty_clusters(
                samples,
                labels,
                assignment.sums,
                assignment.counts,
                new_centroids,
                self._batch_size(),
            )
            inertia = self._inertia(samples, assignment, new_centroids, repaired)
            check_finite_centroids(iteration, new_centroids, inertia)
            centroids, previous = new_centroids, labels
            record = {
                "iteration": iteration,
                "loss": loss,
                "changed": changed,
                "inertia": inertia / scale**2,
                "sizes": sizes,
                "empty_repaired": repaired,
                "seconds": time.perf_counter() - started,
            }
            if self.record_centroids:
                record["centroids"] = (centroids / scale).cpu().numpy()
            self.history_.append(record)
            if self.verbose:
                print(
                    f"iteration {iteration:3d}  loss {loss:.4f}  changed {changed:.4f}  "
                    f"inertia {record['inertia']:.6g}  ({record['seconds']:.2f} s)",
                    file=sys.stderr,
                )
            stop_requested = any(bool(cb(iteration, record, self)) for cb in callbacks)
            self.converged_ = changed <= self.tol
            if checkpoints is not None:
                done = self.converged_ or stop_requested
                checkpoints.save(self, iteration, centroids, labels, network, optimizer, rng, done)
                checkpoints.raise_if_interrupted(iteration)
            if self.converged_ or stop_requested:
                break
        self.network_ = network.eval()
        self.labels_ = labels.numpy()
        self.cluster_centers_ = (centroids / scale).cpu().numpy()
        self.inertia_ = self.history_[-1]["inertia"]
        self.n_iter_ = len(self.history_)

    def _fit_learned(self, data: np.ndarray) -> NeuralKMeans:
        """``features="learned"``: :func:`~neural_kmeans.self_labelling.fit_learned`."""
        from neural_kmeans.self_labelling import fit_learned, learned_params

        self._network_name = LEARNED_NETWORK
        check_data_for_params(
            self, data.shape[1:], data.shape[0], self.image_shape_, self._network_name
        )
        self._dtype = torch.float32
        self.device_ = self._resolve_device()
        _, seed = self._random_generators()
        callbacks = [
            functools.partial(_model_callback, callback, self)
            for callback in _as_list(self.callbacks)
        ]
        result = fit_learned(
            data,
            self.n_clusters,
            image_shape=self.image_shape_,
            random_state=seed,
            device=self.device_,
            verbose=int(self.verbose),
            callbacks=callbacks,
            params=learned_params(self.learned_params),
            record_centroids=bool(self.record_centroids),
        )
        self.network_ = self.current_network_ = result.network
        self.labels_ = result.labels
        self.cluster_centers_ = result.input_centroids
        self.initial_centers_ = result.initial_input_centroids
        self.inertia_ = result.inertia
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.history_ = result.history
        self.embedding_ = result.embedding
        self.timings_ = result.timings
        return self

    def _assign(self, network: torch.nn.Module, samples: SampleBatches) -> Assignment:
        """Step 3 over all the samples; in a process group, over this rank's shard."""
        rank, size = distributed.rank_and_size()
        if size == 1:
            return assign_and_accumulate(network, samples, self.n_clusters, self._batch_size())
        start, stop = distributed.shard_bounds(samples.n_samples, rank, size)
        local = assign_and_accumulate(
            network, samples, self.n_clusters, self._batch_size(), start, stop
        )
        return distributed.combine_assignments(local, samples.n_samples)

    def _inertia(
        self,
        samples: SampleBatches,
        assignment: Assignment,
        centroids: torch.Tensor,
        repaired: list[int],
    ) -> float:
        """Sum of ``||x - c_label||²`` in the scaled space, from the pass's sums."""
        if repaired:
            return float(
                squared_distances_to_assigned(
                    samples, assignment.labels, centroids, self._batch_size()
                ).sum()
            )
        counts = assignment.counts.clamp(min=1).double()
        between = ((assignment.sums**2).sum(dim=1) / counts).sum()
        return max(float(assignment.squared_norm - between), 0.0)

    # ------------------------------------------------------------------ helpers
    def _batch_size(self) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        if self._network_name == LEARNED_NETWORK:
            return LEARNED_BATCH_SIZE
        if self._network_name == "cnn" and self.device_.type == "cpu":
            return CNN_CPU_BATCH_SIZE
        return DEFAULT_BATCH_SIZE

    def _learning_rate(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return CNN_LEARNING_RATE if self._network_name == "cnn" else DEFAULT_LEARNING_RATE

    def _compute_dtype(self, data: np.ndarray) -> torch.dtype:
        """float32, except the exact nearest-centroid network on float64 input."""
        if self.network == "nearest-centroid" and data.dtype == np.float64:
            return torch.float64
        return torch.float32

    def _resolve_device(self) -> torch.device:
        resolved = check_device(self.device)
        if resolved is None:  # "auto"
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return resolved

    def _input_shape(self) -> tuple[int, ...]:
        """One sample's shape as the network takes it."""
        if self.image_shape_ is not None and self._network_name not in ROW_NETWORKS:
            return self.image_shape_
        return (self.n_features_in_,)

    def _random_generators(self) -> tuple[np.random.Generator, int]:
        """A local numpy generator and a torch seed, from ``random_state``."""
        state = self.random_state
        if isinstance(state, np.random.Generator):
            seed = int(state.integers(2**31 - 1))
        elif isinstance(state, np.random.RandomState):
            seed = int(state.randint(2**31 - 1))
        elif state is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        elif isinstance(state, numbers.Integral) and not isinstance(state, bool):
            seed = int(state)
        else:
            raise ValueError(
                f"random_state must be None, an int, a numpy Generator or RandomState, "
                f"got {state!r}"
            )
        return np.random.default_rng(seed), seed

    def _samples_for(self, X: Any) -> SampleBatches:
        """Validated batches of new samples shaped like the training samples."""
        check_is_fitted(self, "network_")
        data = to_numpy_samples(X)
        n_features = int(np.prod(data.shape[1:]))
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        if data.ndim > 2 and resolve_image_shape(data.shape[1:], None) != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {data.shape[1:]}, but the model was fitted on "
                f"images of shape {self.image_shape_}"
            )
        return SampleBatches(data, self._input_shape(), self._dtype, self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        # transform gives the network's float32 probabilities whatever the input dtype
        tags.transformer_tags.preserves_dtype = []
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.n_clusters


def _model_callback(callback: Callback, model: NeuralKMeans, iteration: int, record: dict) -> Any:
    return callback(iteration, record, model)


def _as_list(callbacks: Callback | Sequence[Callback] | None) -> list[Callback]:
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    return list(callbacks)


def _like_input(result: np.ndarray, X: Any) -> Any:
    """Return ``result`` as a tensor on X's device when X is a tensor."""
    if isinstance(X, torch.Tensor):
        return torch.from_numpy(result).to(X.device)
    return result
