"""The ``NeuralKMeans`` estimator: K-means with a neural network as the distance step.

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

from neural_kmeans.core import distributed
from neural_kmeans.core.assignment import predict_batches
from neural_kmeans.core.centroids import InputSpace, squared_distances_to_assigned
from neural_kmeans.core.initialization import CentroidStart
from neural_kmeans.core.loop import (
    Callback,
    LoopParts,
    LoopSettings,
    LoopState,
    run_loop,
    start_state,
)
from neural_kmeans.core.networks import (
    LEARNED_NETWORK,
    NETWORK_NAMES,
    ROW_NETWORKS,
    make_network,
    needs_standardizing,
    resolve_network_name,
)
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.training import CentroidTeacher, make_optimizer
from neural_kmeans.core.validation import (
    PARAMETER_CONSTRAINTS,
    InvalidParameterError,
    check_data_for_params,
    check_device,
    check_parameters,
    resolve_image_shape,
    to_numpy_samples,
)
from neural_kmeans.io.checkpoint import (
    FitCheckpoints,
    checkpoint_params,
    interrupt_handlers,
)
from neural_kmeans.io.model_file import ModelFileError, read_model, save_model

CNN_CPU_BATCH_SIZE = 256
LEARNED_BATCH_SIZE = 1024
DEFAULT_BATCH_SIZE = 4096
CNN_LEARNING_RATE = 1e-3
DEFAULT_LEARNING_RATE = 1e-2
#: The fitted attributes a model file keeps (``network_`` is saved as its weights).
FITTED_ATTRIBUTES = (
    "cluster_centers_",
    "labels_",
    "inertia_",
    "n_iter_",
    "history_",
    "initial_centers_",
    "converged_",
    "n_features_in_",
    "image_shape_",
    "embedding_",
    "timings_",
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
        ``callback(state) -> stop?`` after every iteration, with the loop's
        :class:`~neural_kmeans.core.loop.LoopState` (``iteration``, ``record``,
        ``network``, ``labels``, ``cluster_centers``, ``history``, ...); returning
        True stops the fit.
    features : {"pixels", "learned"}, default="pixels"
        The space the loop runs in. ``"pixels"``: the samples themselves, the faithful
        loop above. ``"learned"``: a learned representation (an autoencoder's codes,
        their k-nearest-neighbour graph laid out by UMAP; Gaussian-mixture first
        clusters), with the network trained on each cluster's most confident members
        instead of the lone centroid (self-labelling); see
        :mod:`~neural_kmeans.representation.self_labelling`. Needs umap-learn (the
        ``learned`` extra). Both run through the same loop
        (:func:`~neural_kmeans.core.loop.run_loop`). With ``"learned"``, ``network``,
        ``init``, ``steps_per_iter``, ``optimizer``, ``learning_rate``, ``max_iter``
        and ``tol`` do not apply: its settings are ``learned_params``.
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
        Sum of squared distances of the samples to their cluster's centroid.
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

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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
        self.n_features_in_ = int(np.prod(data.shape[1:]))
        self.image_shape_ = resolve_image_shape(data.shape[1:], self.image_shape)
        learned = self.features == "learned"
        name = (
            LEARNED_NETWORK
            if learned
            else resolve_network_name(self.network, bool(self.image_shape_))
        )
        check_data_for_params(self, data.shape[1:], data.shape[0], self.image_shape_, name)
        if learned and distributed.is_distributed():
            raise ValueError(
                'features="learned" runs in one process: its first stage (autoencoder, '
                "neighbour graph, UMAP) is not sharded; start it without torchrun"
            )
        self._network_name = name
        self._dtype = self._compute_dtype(data)
        self.device_ = self._resolve_device()
        samples = SampleBatches(data, self._input_shape(), self._dtype, self.device_)
        rng, seed = self._random_generators()
        parts, settings = self._loop_parts(seed), self._loop_settings()
        checkpoints = None
        if self.checkpoint_dir is not None:
            shape = {"n_features_in_": self.n_features_in_, "network": self._network_spec()}
            checkpoints = FitCheckpoints(
                self.checkpoint_dir, self.get_params(), data, shape, resume
            )
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), interrupt_handlers(checkpoints):
            torch.manual_seed(seed)
            state = self._run(samples, parts, settings, rng, checkpoints)
        self._keep(state)
        return self

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
        fitted = {name: getattr(self, name) for name in FITTED_ATTRIBUTES if hasattr(self, name)}
        fitted["image_shape_"] = None if self.image_shape_ is None else list(self.image_shape_)
        save_model(
            path,
            params=self.get_params(deep=False),
            fitted=fitted,
            network={**self._network_spec(), "device": str(self.device_)},
            weights=self.network_.state_dict(),
        )

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
        saved = read_model(path)
        return cls._from_saved(saved, path, network, device)

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
    def _loop_parts(self, seed: int) -> LoopParts:
        """Steps 1, 2 and 4 for the chosen ``features``."""
        if self.features == "learned":
            from neural_kmeans.representation.autoencoder import use_bfloat16
            from neural_kmeans.representation.self_labelling import learned_params, learned_parts

            params = learned_params(self.learned_params)
            bfloat16 = use_bfloat16(self.device_) if params.bfloat16 is None else params.bfloat16
            return learned_parts(params, self.n_clusters, seed, bfloat16, int(self.verbose))
        return LoopParts(
            start=CentroidStart(self.n_clusters, self.init),
            train=CentroidTeacher(self.steps_per_iter, self._dtype),
            update=InputSpace(),
        )

    def _loop_settings(self) -> LoopSettings:
        max_iter, tol = self.max_iter, self.tol
        if self.features == "learned":
            from neural_kmeans.representation.self_labelling import learned_params

            params = learned_params(self.learned_params)
            max_iter, tol = params.max_iter, params.tol
        return LoopSettings(
            max_iter=max_iter,
            tol=tol,
            batch_size=self._batch_size(),
            learning_rate=self._learning_rate(),
            verbose=int(self.verbose),
            record_centroids=bool(self.record_centroids),
        )

    def _run(
        self,
        samples: SampleBatches,
        parts: LoopParts,
        settings: LoopSettings,
        rng: np.random.Generator,
        checkpoints: FitCheckpoints | None,
    ) -> LoopState:
        """Step 1 (or the checkpoint's state), then the loop."""
        done = False
        if checkpoints is not None and checkpoints.resumed is not None:
            network, optimizer = self._new_network(samples)
            state, done = checkpoints.restore(network, optimizer, rng, self.device_)
        else:
            state = start_state(parts, samples, rng)
            state.network, state.optimizer = self._new_network(samples)
            if checkpoints is not None:
                checkpoints.save(state, rng, done=False)
                checkpoints.raise_if_interrupted(0)
        if not done:
            callbacks = _as_list(self.callbacks)
            run_loop(
                state, parts, samples, settings, rng, callbacks=callbacks, checkpoints=checkpoints
            )
        return state

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
        if self.features == "learned":
            return network, None
        return network, make_optimizer(network, self.optimizer, self._learning_rate())

    def _keep(self, state: LoopState) -> None:
        """The loop's result as fitted attributes."""
        self.network_ = state.network.eval()
        self.labels_ = state.labels.numpy()
        self.cluster_centers_ = state.cluster_centers
        self.initial_centers_ = (state.initial_means / state.scale).cpu().numpy()
        self.history_ = state.history
        self.inertia_ = state.history[-1]["inertia"]
        self.n_iter_ = len(state.history)
        self.converged_ = state.converged
        if self.features == "learned":
            self.embedding_ = state.extras["embedding"].numpy()
            timings = dict(state.info.get("timings", {}))
            timings["loop"] = float(sum(record["seconds"] for record in state.history))
            timings["total"] = float(sum(timings.values()))
            self.timings_ = timings

    # ------------------------------------------------------------------ helpers
    def _check_params(self, resume: bool) -> None:
        """The parameters against their declared constraints, and the learned mode's."""
        check_parameters(self.get_params(deep=False), type(self).__name__)
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

    def _network_spec(self) -> dict[str, Any]:
        """How to rebuild the network (for model files and checkpoints)."""
        from neural_kmeans.io.container import network_to_json

        return {
            "name": network_to_json(self._network_name),
            "input_shape": list(self._input_shape()),
            "n_clusters": int(self.n_clusters),
            "standardized": needs_standardizing(self._network_name, self._input_shape()),
            "dtype": str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def _from_saved(cls, saved: Any, path: Any, factory: Any, device: Any) -> NeuralKMeans:
        """Rebuild a fitted estimator from a model file's state."""
        from neural_kmeans.io.container import params_from_json

        spec = saved.network
        name = spec["name"]
        if isinstance(name, dict):
            if not callable(factory):
                raise ModelFileError(
                    f"{path} was fitted with the custom network factory {name['factory']}, "
                    "which a model file cannot hold (it is code); pass it again: "
                    "NeuralKMeans.load(path, network=factory)"
                )
            name = factory
        elif name not in (*NETWORK_NAMES, LEARNED_NETWORK):
            raise ModelFileError(f"{path} names an unknown network {name!r}")
        params = params_from_json(saved.params, saved.tensors, factory)
        if device is not None:
            params["device"] = device
        model = cls(**params)
        try:
            check_device(model.device)
        except InvalidParameterError as problem:
            raise ValueError(
                f"{problem}; the model in {path} was saved with device="
                f"{saved.params['device']!r}: load it elsewhere with "
                "NeuralKMeans.load(path, device='cpu')"
            ) from None
        for attribute, value in saved.fitted.items():
            setattr(model, attribute, value)
        shape = model.image_shape_
        model.image_shape_ = None if shape is None else tuple(int(s) for s in shape)
        model._network_name = name
        model._dtype = getattr(torch, spec["dtype"])
        model.device_ = model._resolve_device()
        if tuple(spec["input_shape"]) != model._input_shape():
            raise ModelFileError(
                f"{path} is inconsistent: input shape {tuple(spec['input_shape'])} does not "
                f"follow from its image shape {model.image_shape_} and network {name!r}"
            )
        standardize = (torch.zeros(model.n_features_in_), 1.0) if spec["standardized"] else None
        with torch.random.fork_rng(devices=[]):
            network = make_network(name, model._input_shape(), model.n_clusters, standardize)
        network = network.to(device=model.device_, dtype=model._dtype)
        try:
            network.load_state_dict(saved.weights, strict=True)
        except RuntimeError as problem:
            raise ModelFileError(
                f"the network saved in {path} does not fit the network rebuilt from its "
                f"header{' (with the factory given)' if callable(name) else ''}: {problem}"
            ) from None
        model.network_ = network.eval()
        return model

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

    def _compute_dtype(self, data: np.ndarray) -> torch.dtype:
        """float32, except the exact nearest-centroid network on float64 input."""
        if self.network == "nearest-centroid" and data.dtype == np.float64:
            if self.features == "pixels":
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
        else:
            seed = int(state)
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
