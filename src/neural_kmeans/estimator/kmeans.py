"""``NeuralKMeans``: K-means with a neural network as the distance step.

A thin scikit-learn face over the core loop (:func:`neural_kmeans.core.loop.run_loop`):
it checks the parameters and the data, picks the loop's parts for the chosen
``features`` (the pixels: :mod:`~neural_kmeans.core.initialization`,
:mod:`~neural_kmeans.core.training`, :mod:`~neural_kmeans.core.centroids`; the
learned space: :mod:`~neural_kmeans.representation.self_labelling`), runs the loop,
and keeps its result as fitted attributes. Model files and checkpoints are
:mod:`neural_kmeans.io`'s, which get plain state from here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from neural_kmeans.core import distributed
from neural_kmeans.core.assignment import predict_batches
from neural_kmeans.core.centroids import InputSpace, inertia
from neural_kmeans.core.initialization import CentroidStart
from neural_kmeans.core.loop import run_loop, start_state
from neural_kmeans.core.metrics import same_clustering
from neural_kmeans.core.networks import (
    LEARNED_NETWORK,
    ROW_NETWORKS,
    NearestCentroidNetwork,
    make_network,
    needs_standardizing,
    resolve_network_name,
)
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.state import Callback, LoopParts, LoopSettings, LoopState
from neural_kmeans.core.training import CentroidTeacher, deterministic_kernels, make_optimizer
from neural_kmeans.core.validation import (
    PARAMETER_CONSTRAINTS,
    InvalidParameterError,
    check_data_for_params,
    check_parameters,
    check_sample_weight,
    check_value_range,
    random_state_of,
    resolve_device,
    resolve_image_shape,
    to_numpy_samples,
)
from neural_kmeans.estimator import persistence
from neural_kmeans.io.checkpoint import FitCheckpoints, checkpoint_params, interrupt_handlers

#: Inference batches, in samples: the CNN's on a CPU, the learned mode's, the others'.
CNN_CPU_BATCH_SIZE, LEARNED_BATCH_SIZE, DEFAULT_BATCH_SIZE = 256, 1024, 4096
#: Default iterations: scikit-learn's for the exact K-means network, the notebook's for
#: the trained networks; and the default learning rates.
KMEANS_MAX_ITER, TRAINED_MAX_ITER = 300, 20
CNN_LEARNING_RATE, DEFAULT_LEARNING_RATE = 1e-3, 1e-2
#: The fitted attributes a model file keeps (``network_`` is saved as its weights).
FITTED_ATTRIBUTES = (
    *("cluster_centers_", "labels_", "inertia_", "restart_inertias_", "n_iter_", "history_"),
    *("initial_centers_", "converged_", "n_features_in_", "image_shape_", "_n_init"),
    *("embedding_", "timings_"),
)


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
        builds your own. ``"auto"`` is ``"cnn"`` for images of 8x8 pixels or more,
        ``"mlp"`` otherwise.
    init : {"random", "k-means++"}, callable or array of shape (K, n_features), default="k-means++"
        First centroids: K distinct random samples (the reference notebook),
        scikit-learn's k-means++ seeding (the same draws as ``KMeans`` for the same
        ``random_state``), ``init(X, n_clusters, random_state) -> centroids``, or the
        given centroids (input units).
    n_init : "auto" or int, default="auto"
        Runs from different first centroids; the one of lowest inertia is kept, as in
        scikit-learn: ``"auto"`` is 1 for ``"k-means++"`` and given centroids, 10 for
        ``"random"`` and a callable.
    steps_per_iter : int, default=10
        Gradient steps on the K centroids per iteration. The notebook's code took 1,
        which leaves a freshly built CNN nearly untrained; 10 reach the level of its
        published figures.
    optimizer : {"adam", "sgd"}, default="adam"
    learning_rate : float, optional
        The optimiser's step size. By default 1e-3 for the CNN (Keras' Adam default,
        as the notebook) and 1e-2 for the other networks, which learn K points fast.
    max_iter : int, optional
        Most iterations of the loop (of each run). By default 300 for the
        nearest-centroid network (scikit-learn's, which it reproduces; it stops when
        converged) and 20 for the trained networks (the notebook's: a few gradient
        steps per iteration keep moving their boundaries, so they seldom settle).
    tol : float, default=1e-4
        Stop when no label changed, or when the sum of the centroids' squared moves is
        at most ``tol`` times the data's mean variance per feature (scikit-learn's
        test). ``tol=0`` stops only when no label changes.
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
        ``callback(state) -> stop?`` after every iteration, with the loop's
        :class:`~neural_kmeans.core.loop.LoopState` (``iteration``, ``record``,
        ``network``, ``labels``, ``cluster_centers``, ``history``, ...); returning
        True stops the fit.
    features : {"pixels", "learned"}, default="pixels"
        The space the loop runs in: the samples themselves (the faithful loop), or a
        learned space (images' gradient histograms or rows' autoencoder codes, their
        neighbour graph laid out by UMAP) with the network trained on each cluster's
        most confident members (:mod:`~neural_kmeans.representation.self_labelling`;
        needs umap-learn). Its
        settings are ``learned_params``; ``network``, ``init``, ``steps_per_iter``,
        ``optimizer``, ``learning_rate``, ``max_iter`` and ``tol`` are the pixels'.
    learned_params : dict, optional
        Overrides of the learned mode's defaults, by name
        (:class:`~neural_kmeans.representation.self_labelling.LearnedParams`), e.g.
        ``{"autoencoder_epochs": 5}``.
    checkpoint_dir : str or os.PathLike, optional
        Write the loop's whole state to ``checkpoint_dir/checkpoint.safetensors`` after
        step 1 and every iteration (atomically), and let SIGINT/SIGTERM stop the fit
        cleanly after the current stage (:class:`~neural_kmeans.io.checkpoint.FitInterrupted`);
        ``fit(X, resume=True)`` continues from it. See :mod:`neural_kmeans.io.checkpoint`.

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
        Sum of (weighted) squared distances of the samples to their cluster's
        centroid, in the input's units.
    restart_inertias_ : list of float
        The final inertia of each of the ``n_init`` runs (the kept one is the lowest).
    n_iter_ : int
        Iterations run.
    network_ : torch.nn.Module
        The trained network that gave ``labels_`` (in eval mode).
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
        ``features="learned"`` only: seconds of each stage (``features``: gradient
        histograms or autoencoder; ``knn``, ``umap``, ``mixture``, ``loop``, ``total``).

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
        init: str | np.ndarray | Callable = "k-means++",
        n_init: str | int = "auto",
        steps_per_iter: int = 10,
        optimizer: str = "adam",
        learning_rate: float | None = None,
        max_iter: int | None = None,
        tol: float = 1e-4,
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
        self.n_init = n_init
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

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    # ------------------------------------------------------------------ public API
    def fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *, resume: bool = False
    ) -> NeuralKMeans:
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like, sparse matrix or torch.Tensor of shape (n, d), (n, h, w), (n, c, h, w)
            or (n, h, w, c) (read as such when the last size is 1-4 and the first is not:
            copied once to channels first, as ``cluster_centers_`` and ``image_shape_``
            are). uint8 is scaled to [0, 1] per batch.
            Sparse rows (scipy CSR, CSC, ...) work with the row networks (``linear``,
            ``mlp``, ``nearest-centroid``) and are never made dense whole.
        y : ignored
            Present for scikit-learn's API; labels are never read.
        sample_weight : array-like of shape (n,), optional
            Non-negative weight of each sample: weighted means, inertia, k-means++ and
            ``"random"`` draws, and (learned mode) weighted training draws. An integer
            weight acts as that many copies of the sample.
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
        neural_kmeans.io.checkpoint.CheckpointError
            A checkpoint that cannot be written, or resumed.
        neural_kmeans.io.checkpoint.FitInterrupted
            SIGINT or SIGTERM came during a fit with a ``checkpoint_dir``; the
            stage's checkpoint is written.
        neural_kmeans.core.validation.DivergenceError
            A loss, network output or centroid that is not finite.
        """
        self._check_params(resume)
        data = to_numpy_samples(X)
        weights = check_sample_weight(sample_weight, data.shape[0])
        self._check_data(data)
        self._dtype = self._compute_dtype(data)
        self.device_ = resolve_device(self.device)
        samples = SampleBatches(data, self._input_shape(), self._dtype, self.device_, weights)
        samples.keep_float_copy()  # every pass reads it: convert once (memory-mapped: never)
        runs = self._n_init = self._n_init_runs()
        checkpoints = None
        if self.checkpoint_dir is not None:
            if runs > 1:
                raise InvalidParameterError(
                    f"checkpoint_dir needs a single run, but n_init gives {runs}: pass "
                    "n_init=1 to checkpoint the fit"
                )
            spec = persistence.network_spec(self)
            shape = {"n_features_in_": self.n_features_in_, "network": spec}
            checkpoints = FitCheckpoints(
                self.checkpoint_dir, self.get_params(), data, shape, resume
            )
            checkpoints.max_iter = self._loop_settings(samples).max_iter
        with interrupt_handlers(checkpoints), deterministic_kernels(self.device_):
            best, inertias = self._fit_runs(samples, runs, checkpoints)
        self._keep(best, inertias)
        return self

    def _check_data(self, data: Any) -> None:
        """Shapes, network and data checks that need both (before any work)."""
        sparse = scipy.sparse.issparse(data)
        self.n_features_in_ = int(np.prod(data.shape[1:]))
        self.image_shape_ = (
            None if sparse else resolve_image_shape(data.shape[1:], self.image_shape)
        )
        learned = self.features == "learned"
        name = LEARNED_NETWORK if learned else resolve_network_name(self.network, self.image_shape_)
        if sparse and (learned or name == "cnn"):
            which = 'features="learned"' if learned else "network='cnn'"
            raise TypeError(
                f"{which} needs dense samples; sparse rows work with the row networks "
                "(linear, mlp, nearest-centroid), or pass X.toarray()"
            )
        check_data_for_params(self, data.shape[1:], data.shape[0], self.image_shape_, name)
        if learned and distributed.is_distributed():
            raise ValueError(
                'features="learned" runs in one process: its first stage (features, '
                "neighbour graph, UMAP) is not sharded; start it without torchrun"
            )
        self._network_name = name

    def _fit_runs(
        self, samples: SampleBatches, runs: int, checkpoints: FitCheckpoints | None
    ) -> tuple[LoopState, list[float]]:
        """Every run (``n_init``) from its own first centroids; the one of lowest inertia
        (among different clusterings, as scikit-learn chooses) and every run's inertia."""
        rng = random_state_of(self.random_state)
        settings = self._loop_settings(samples)
        learned = self.features == "learned"
        # Step 1 of every run first, then the torch seeds: the draws KMeans makes.
        starts = [] if learned else [self._loop_parts(0)] * runs
        firsts = [start_state(parts, samples, rng, run) for run, parts in enumerate(starts)]
        seeds = rng.randint(np.iinfo(np.int32).max, size=runs)
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        best, inertias = None, []
        for run, seed in enumerate(seeds.tolist()):
            parts = self._loop_parts(seed)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                state = self._run(samples, parts, settings, rng, checkpoints, firsts, run)
            inertias.append(state.inertia / samples.scale**2)
            if best is None or (
                state.inertia < best.inertia and not same_clustering(state.labels, best.labels)
            ):
                best = state
        return best, inertias

    @classmethod
    def from_checkpoint(
        cls, directory: str | os.PathLike, *, network: Callable | None = None
    ) -> NeuralKMeans:
        """A new, unfitted estimator with the parameters of the checkpoint in
        ``directory``: ``NeuralKMeans.from_checkpoint(DIR).fit(X, resume=True)``
        continues an interrupted fit (a custom network factory must be given again)."""
        return cls(**checkpoint_params(directory, network))

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors + JSON header + SHA-256; no pickle).

        See :mod:`neural_kmeans.io.model_file`. A model with a callable ``network``
        is saved too, but loading it needs the factory again.
        """
        check_is_fitted(self, "network_")
        persistence.save(self, path, FITTED_ATTRIBUTES)

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
        neural_kmeans.io.model_file.ModelFileError
            A damaged file, a file of another format version, or a missing factory.
        """
        return persistence.load(cls, path, network, device)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_`` (a tensor on X's device when X is a tensor)."""
        return _like_input(self.fit(X, sample_weight=sample_weight).labels_, X)

    def predict(self, X: Any) -> Any:
        """The network's cluster for each sample (for ``network="nearest-centroid"``, the
        nearest of ``cluster_centers_``, as ``KMeans.predict``).

        Parameters
        ----------
        X : array-like, sparse matrix or torch.Tensor of shape (n, ...) like the training
            samples

        Returns
        -------
        labels : ndarray (or tensor, for tensor input) of shape (n,), int64
        """
        samples = self._samples_for(X)
        labels = predict_batches(self.network_, samples, self._batch_size())
        return _like_input(labels.numpy(), X)

    def predict_proba(self, X: Any) -> Any:
        """The network's cluster probabilities (its softmax), shape (n, K), float32."""
        samples = self._samples_for(X)
        probs = predict_batches(self.network_, samples, self._batch_size(), probabilities=True)
        return _like_input(probs.numpy(), X)

    def transform(self, X: Any) -> Any:
        """The Euclidean distance of each sample to each of ``cluster_centers_``, shape
        (n, K), in the input's units (as ``KMeans.transform``)."""
        samples = self._samples_for(X, dtype=torch.float64)  # the input's values, exactly
        centers = torch.as_tensor(self.cluster_centers_, dtype=torch.float64) * samples.scale
        blocks = [
            torch.cdist(rows.double().cpu(), centers, compute_mode="donot_use_mm_for_euclid_dist")
            / samples.scale
            for _, rows in samples(self._batch_size())
        ]
        distances = torch.cat(blocks).numpy().astype(self.cluster_centers_.dtype, copy=False)
        return _like_input(distances, X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of ``X`` under the network's clusters and
        ``cluster_centers_``."""
        samples = self._samples_for(X, sample_weight)
        labels = predict_batches(self.network_, samples, self._batch_size())
        centers = torch.as_tensor(self.cluster_centers_ * samples.scale, device=self.device_)
        return -inertia(samples, labels, centers, self._batch_size()) / samples.scale**2

    # ------------------------------------------------------------------ the loop
    def _loop_parts(self, seed: int) -> LoopParts:
        """Steps 1, 2 and 4 for the chosen ``features``."""
        if self.features == "learned":
            from neural_kmeans.representation.autoencoder import use_bfloat16
            from neural_kmeans.representation.self_labelling import learned_params, learned_parts

            params = learned_params(self.learned_params)
            bfloat16 = use_bfloat16(self.device_) if params.bfloat16 is None else params.bfloat16
            stages = max(int(self.verbose), int(params.progress))
            return learned_parts(params, self.n_clusters, seed, bfloat16, stages)
        return LoopParts(
            start=CentroidStart(self.n_clusters, self.init),
            train=CentroidTeacher(self.steps_per_iter, self._dtype),
            update=InputSpace(),
            final_assignment=self._network_name == "nearest-centroid",
        )

    def _loop_settings(self, samples: SampleBatches) -> LoopSettings:
        """``max_iter`` and ``tol`` (scaled by the data's mean variance per feature, as
        scikit-learn's), and the rest."""
        default = KMEANS_MAX_ITER if self._network_name == "nearest-centroid" else TRAINED_MAX_ITER
        max_iter = default if self.max_iter is None else int(self.max_iter)
        tol = self.tol
        if self.features == "learned":
            from neural_kmeans.representation.self_labelling import learned_params

            params = learned_params(self.learned_params)
            max_iter, tol = params.max_iter, params.tol
        if tol > 0:
            _, variance = samples.moments(self._batch_size(), weighted=False)
            tol = tol * variance / samples.n_features
        return LoopSettings(
            max_iter=max_iter,
            tol=tol,
            batch_size=self._batch_size(),
            learning_rate=self._learning_rate(),
            verbose=int(self.verbose),
            record_centroids=bool(self.record_centroids),
        )

    def _n_init_runs(self) -> int:
        """The number of runs ``n_init`` asks for, as scikit-learn counts them."""
        array_init = not isinstance(self.init, str) and not callable(self.init)
        if self.n_init == "auto":
            random = isinstance(self.init, str) and self.init == "random"
            return 10 if (callable(self.init) or random) else 1
        if array_init and self.n_init != 1:
            warnings.warn(
                "Explicit initial center position passed: performing only one init in "
                f"{type(self).__name__} instead of n_init={self.n_init}.",
                RuntimeWarning,
                stacklevel=3,
            )
            return 1
        return int(self.n_init)

    def _run(
        self,
        samples: SampleBatches,
        parts: LoopParts,
        settings: LoopSettings,
        rng: np.random.RandomState,
        checkpoints: FitCheckpoints | None,
        firsts: list[LoopState],
        run: int,
    ) -> LoopState:
        """One run: step 1 (drawn already for the pixels, or the checkpoint's state),
        then the loop."""
        done = False
        if checkpoints is not None and checkpoints.resumed is not None:
            network, optimizer = self._new_network(samples)
            state, done = checkpoints.restore(network, optimizer, self.device_)
        else:
            state = firsts[run] if firsts else start_state(parts, samples, rng, run)
            state.network, state.optimizer = self._new_network(samples)
            if checkpoints is not None:
                checkpoints.save(state, done=False)
                checkpoints.raise_if_interrupted(0)
        callbacks = [] if done else _as_list(self.callbacks)
        settings = settings if not done else replace(settings, max_iter=state.iteration)
        return run_loop(
            state, parts, samples, settings, callbacks=callbacks, checkpoints=checkpoints
        )

    def _new_network(
        self, samples: SampleBatches
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer | None]:
        """The untrained network (its weights drawn from torch's seeded generator) and,
        for the pixels, its optimiser."""
        standardize = None
        if needs_standardizing(self._network_name, self._input_shape()):
            standardize = samples.mean_and_scale(self._batch_size())
        network = make_network(
            self._network_name, self._input_shape(), self.n_clusters, standardize
        )
        network = network.to(device=self.device_, dtype=self._dtype)
        if isinstance(network, NearestCentroidNetwork):
            network.offset.copy_(samples.centring_offset(self._batch_size()))
        if self.features == "learned":
            return network, None
        return network, make_optimizer(network, self.optimizer, self._learning_rate())

    def _keep(self, state: LoopState, inertias: list[float]) -> None:
        """The best run's result as fitted attributes."""
        dtype = np.float32 if self._dtype == torch.float32 and self._input_float32 else np.float64
        self.network_ = state.network.eval()
        self.labels_ = state.labels.numpy()
        self.cluster_centers_ = state.cluster_centers.astype(dtype)
        self.initial_centers_ = (state.initial_means / state.scale).cpu().numpy().astype(dtype)
        self.history_ = state.history
        self.inertia_ = float(state.inertia / state.scale**2)
        self.restart_inertias_ = inertias
        self.n_iter_ = len(state.history)
        self.converged_ = state.converged
        if self.features == "learned":
            self.embedding_ = state.extras["embedding"].numpy()
            timings = dict(state.info.get("timings", {}))
            timings["loop"] = float(sum(record["seconds"] for record in state.history))
            timings["total"] = float(sum(timings.values()))
            self.timings_ = timings
        distinct = len(np.unique(self.labels_))
        if distinct < self.n_clusters:
            why = (
                "Possibly due to duplicate points in X."
                if self._network_name == "nearest-centroid"
                else "The network gives no sample to the others (more iterations, or "
                "steps_per_iter, may help)."
            )
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                f"({self.n_clusters}). {why}",
                ConvergenceWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ helpers
    def _check_params(self, resume: bool) -> None:
        """The parameters against their declared constraints, and the learned mode's."""
        constraints = self._parameter_constraints
        params = {name: getattr(self, name) for name in constraints}
        check_parameters(params, type(self).__name__, constraints)
        if self.features == "learned":
            from neural_kmeans.representation.layout import check_umap
            from neural_kmeans.representation.self_labelling import learned_params

            try:
                learned_params(self.learned_params)
            except (TypeError, ValueError) as problem:
                raise InvalidParameterError(str(problem)) from None
            check_umap()
        if resume and self.checkpoint_dir is None:
            raise InvalidParameterError(
                "resume=True needs checkpoint_dir: the folder the interrupted fit wrote its "
                "checkpoint to"
            )

    def _batch_size(self) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        if self._network_name == LEARNED_NETWORK:
            return LEARNED_BATCH_SIZE
        if self._network_name == "cnn" and self.device_.type == "cpu":
            return CNN_CPU_BATCH_SIZE
        return DEFAULT_BATCH_SIZE

    def _learning_rate(self) -> float:
        if self.features == "learned":
            from neural_kmeans.representation.self_labelling import learned_params

            return learned_params(self.learned_params).learning_rate
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return CNN_LEARNING_RATE if self._network_name == "cnn" else DEFAULT_LEARNING_RATE

    def _compute_dtype(self, data: Any) -> torch.dtype:
        """float32, except the exact nearest-centroid network on float64 input."""
        self._input_float32 = data.dtype == np.float32
        dtype = torch.float32
        if self._network_name == "nearest-centroid" and data.dtype == np.float64:
            dtype = torch.float64
        check_value_range(data, dtype)
        return dtype

    def _input_shape(self) -> tuple[int, ...]:
        """One sample's shape as the network takes it."""
        if self.image_shape_ is not None and self._network_name not in ROW_NETWORKS:
            return self.image_shape_
        return (self.n_features_in_,)

    def _samples_for(
        self, X: Any, sample_weight: Any = None, dtype: torch.dtype | None = None
    ) -> SampleBatches:
        """Validated batches of new samples shaped like the training samples."""
        check_is_fitted(self, "network_")
        data = to_numpy_samples(X)
        weights = check_sample_weight(sample_weight, data.shape[0])
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
        dtype = dtype or self._dtype
        check_value_range(data, dtype)
        return SampleBatches(data, self._input_shape(), dtype, self.device_, weights)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.n_clusters


def _as_list(callbacks: Callback | Sequence[Callback] | None) -> list[Callback]:
    if callbacks is None:
        return []
    return [callbacks] if callable(callbacks) else list(callbacks)


def _like_input(result: np.ndarray, X: Any) -> Any:
    """Return ``result`` as a tensor on X's device when X is a tensor."""
    if isinstance(X, torch.Tensor):
        return torch.from_numpy(result).to(X.device)
    return result
