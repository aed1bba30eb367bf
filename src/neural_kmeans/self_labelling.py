"""``features="learned"``: the neural K-means loop in a learned space, self-labelled.

:func:`fit_learned` runs the loop of :mod:`neural_kmeans.estimator` with two changes:

* the space the centroids live in is learned (:mod:`neural_kmeans.representation`:
  an autoencoder's codes, their exact k-nearest-neighbour graph, UMAP's layout of it);
* the network is trained on each cluster's most confident members (class-balanced)
  in place of the lone centroid: self-labelling, as DeepCluster and SCAN do.

The loop:

1. initial centroids: a Gaussian mixture on the UMAP embedding (its means, and each
   sample's most likely component as its first cluster);
2. train the classifier on each cluster's most confident members, class k for the
   members of cluster k: a small CNN on the images seen through random rotations
   and shifts (an MLP for feature rows). Confidence is the fraction of a sample's
   nearest neighbours (in the autoencoder's codes) that share its cluster, ties
   broken by the distance to the cluster's centroid in the embedding;
3. every sample's cluster is the network's predicted class;
4. each centroid moves to the mean of its members in the embedding; back to 2 until
   the assignment settles or ``max_iter`` is reached.

The network reads the samples themselves, so a fitted model clusters new samples
with the network alone (``NeuralKMeans(features="learned").predict``). No label is
read anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neural_kmeans.assignment import inference_network
from neural_kmeans.centroids import centroid_means
from neural_kmeans.networks import LearnedNetwork, Standardize
from neural_kmeans.representation import (
    AUTOENCODER_CODES,
    AUTOENCODER_HIDDEN,
    Autoencoder,
    encode,
    exact_knn,
    random_affine,
    train_autoencoder,
    umap_embedding,
    use_bfloat16,
)

#: The choices of ``NeuralKMeans(features=...)``: the loop on the samples themselves,
#: or in the learned space of this module.
FEATURE_NAMES = ("pixels", "learned")

#: ``callback(iteration, record) -> stop?``, called after every iteration of the loop.
LearnedCallback = Callable[[int, dict], "bool | None"]


@dataclass(frozen=True)
class LearnedParams:
    """The fixed defaults of the learned mode (none is tuned to a data set's labels).

    Attributes
    ----------
    autoencoder_hidden, autoencoder_codes : the autoencoder's widths (DEC/N2D's).
    autoencoder_epochs : passes over the data (at least ``autoencoder_min_steps``
        mini-batches of ``autoencoder_batch_size``).
    n_neighbors : neighbours of the k-NN graph (UMAP's and the confidence's).
    umap_components, umap_epochs : UMAP's output dimension and layout epochs
        (None: umap-learn's default).
    mixture_inits : Gaussian mixture restarts; the one of highest likelihood is kept.
    max_iter, tol : iterations of the loop; stop when at most ``tol`` of the samples
        changed cluster.
    steps_per_iter, batch_size, learning_rate : training of the network in each
        iteration (Adam, one-cycle schedule, class-balanced mini-batches).
    confident_fraction : the share of each cluster (its most confident members) the
        network is trained on.
    max_rotation, max_shift : image augmentation (degrees; fraction of the side).
    """

    autoencoder_hidden: tuple[int, ...] = AUTOENCODER_HIDDEN
    autoencoder_codes: int = AUTOENCODER_CODES
    autoencoder_epochs: float = 20.0
    autoencoder_min_steps: int = 500
    autoencoder_batch_size: int = 256
    autoencoder_learning_rate: float = 1e-3
    autoencoder_min_samples: int = 5000
    n_neighbors: int = 20
    umap_components: int = 10
    umap_epochs: int | None = None
    mixture_inits: int = 10
    max_iter: int = 1
    tol: float = 0.0
    steps_per_iter: int = 2000
    batch_size: int = 128
    learning_rate: float = 3e-3
    confident_fraction: float = 0.95
    max_rotation: float = 10.0
    max_shift: float = 0.07
    confidence: str = "agreement"
    warm_start: bool = True
    bfloat16: bool | None = None  # None: where the hardware has it (see use_bfloat16)


def learned_params(overrides: dict | None = None) -> LearnedParams:
    """:class:`LearnedParams` with the given fields changed (``NeuralKMeans.learned_params``).

    Raises
    ------
    ValueError
        A name that is not a field, or a value that cannot be one.
    """
    fields = {f.name: f for f in dataclasses.fields(LearnedParams)}
    if overrides is None:
        return LearnedParams()
    if not isinstance(overrides, dict):
        raise TypeError(
            f"learned_params must be None or a dict of LearnedParams fields, got {overrides!r}"
        )
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"learned_params has unknown names {', '.join(map(repr, unknown))}; "
            f"the names are: {', '.join(fields)}"
        )
    values = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in overrides.items()
    }
    return LearnedParams(**values)


@dataclass
class LearnedResult:
    """What :func:`fit_learned` gives.

    Attributes
    ----------
    labels : ndarray of shape (n,), int64
        Each sample's cluster: the final network's predicted class
        (``predict(X) == labels`` on the training samples).
    centroids : ndarray of shape (K, n_components), float64
        The clusters' means in the UMAP embedding (the loop's learned space).
    input_centroids : ndarray of shape (K, n_features), float64
        The clusters' means in the input's units (uint8 data: 0-255).
    initial_input_centroids : ndarray of shape (K, n_features), float64
        The same for the first clusters (step 1).
    inertia : float
        Sum of squared distances of the samples to their cluster's ``input_centroids``
        (input units).
    network : LearnedNetwork
        The trained classifier, in eval mode; it reads (b, d) rows or
        (b, *input_shape) samples, scaled as in fitting (uint8 divided by 255).
    input_shape : tuple of int
        ``(c, h, w)`` for images, ``(d,)`` for rows.
    scale : float
        The factor the samples were multiplied by (1/255 for uint8, else 1).
    autoencoder : Autoencoder or None
        None where the rows were used as they are (``d <= autoencoder_codes``).
    embedding : ndarray of shape (n, n_components), float32
        UMAP's layout.
    initial_labels : ndarray of shape (n,), int64
        The Gaussian mixture's clusters (step 1).
    history : list of dict
        Per iteration: ``iteration``, ``loss``, ``changed``, ``sizes``, ``confident``
        (samples trained on), ``seconds``.
    timings : dict of str to float
        Seconds of each stage: ``autoencoder``, ``knn``, ``umap``, ``mixture``,
        ``loop``, ``total``.
    n_iter : int
    converged : bool
        Whether the loop stopped because at most ``tol`` of the samples changed cluster.
    """

    labels: np.ndarray
    centroids: np.ndarray
    input_centroids: np.ndarray
    initial_input_centroids: np.ndarray
    inertia: float
    network: LearnedNetwork
    input_shape: tuple[int, ...]
    scale: float
    autoencoder: Autoencoder | None
    embedding: np.ndarray
    initial_labels: np.ndarray
    history: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_iter: int = 0
    converged: bool = False


def fit_learned(
    X: Any,
    n_clusters: int,
    *,
    image_shape: tuple[int, ...] | None = None,
    random_state: int | None = 0,
    device: str | torch.device = "cpu",
    verbose: int = 0,
    callbacks: Sequence[LearnedCallback] | None = None,
    params: LearnedParams | None = None,
    record_centroids: bool = False,
) -> LearnedResult:
    """Cluster ``X`` with the self-labelled neural K-means loop in a learned space.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, d), (n, h, w) or (n, c, h, w)
        The samples; uint8 is divided by 255. No labels: none are read.
    n_clusters : int
        K.
    image_shape : tuple of int, optional
        ``(c, h, w)`` (or ``(h, w)``) when the samples are images; by default taken
        from X's shape: 3-d X is (n, h, w) greyscale, 4-d is (n, c, h, w), 2-d is rows.
    random_state : int, optional
        Seeds everything (weights, mini-batches, augmentation, UMAP, the mixture):
        a fixed seed gives identical labels on the same machine and thread count.
        None draws one. The global numpy and torch random states are not changed.
    device : str or torch.device, default="cpu"
        Where the autoencoder and the network train (UMAP and the mixture run on
        the CPU).
    verbose : int, default=0
        Print each stage's time and one line per iteration (to stderr).
    callbacks : sequence of callables, optional
        ``callback(iteration, record) -> stop?`` after every iteration.
    params : LearnedParams, optional
        The defaults (:class:`LearnedParams`).
    record_centroids : bool, default=False
        Keep each iteration's clusters' means (input units) in ``history`` as
        ``centroids``.

    Returns
    -------
    LearnedResult
    """
    params = params or LearnedParams()
    device = torch.device(device)
    seed = (
        int(np.random.default_rng().integers(2**31 - 1))
        if random_state is None
        else int(random_state)
    )
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be at least 1, got {n_clusters}")
    data = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if data.ndim < 2:
        raise ValueError(f"X must have 2 to 4 dimensions (n, ...), got shape {data.shape}")
    input_shape = _input_shape(data.shape[1:], image_shape)
    scale = 1.0 / 255.0 if data.dtype == np.uint8 else 1.0
    n = data.shape[0]
    if n <= n_clusters:
        raise ValueError(f"n_samples={n} must be larger than n_clusters={n_clusters}")
    bfloat16 = use_bfloat16(device) if params.bfloat16 is None else params.bfloat16
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _fit_learned(
            data, n_clusters, input_shape, scale, seed, device, bfloat16, verbose,
            list(callbacks or []), params, record_centroids,
        )  # fmt: skip


def _fit_learned(
    data: np.ndarray,
    n_clusters: int,
    input_shape: tuple[int, ...],
    scale: float,
    seed: int,
    device: torch.device,
    bfloat16: bool,
    verbose: int,
    callbacks: list[LearnedCallback],
    params: LearnedParams,
    record_centroids: bool,
) -> LearnedResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    generator = torch.Generator().manual_seed(seed)
    samples = _as_float_samples(data, input_shape, device)  # (n, *input_shape) float32
    n = samples.shape[0]
    rows = samples.reshape(n, -1)
    is_image = len(input_shape) == 3

    # The learned space: autoencoder codes → exact k-NN graph → UMAP.
    stage = time.perf_counter()
    autoencoder = None
    if rows.shape[1] > params.autoencoder_codes and n >= params.autoencoder_min_samples:
        ae_rows = rows if is_image else _standardized(rows)
        autoencoder, _ = train_autoencoder(
            ae_rows,
            hidden=params.autoencoder_hidden,
            n_codes=params.autoencoder_codes,
            epochs=params.autoencoder_epochs,
            min_steps=params.autoencoder_min_steps,
            batch_size=params.autoencoder_batch_size,
            learning_rate=params.autoencoder_learning_rate,
            bfloat16=bfloat16,
            generator=generator,
            verbose=verbose - 1 if verbose > 1 else 0,
        )
        codes = encode(autoencoder.encoder, ae_rows)
    else:
        codes = _standardized(rows)
    timings["autoencoder"] = _lap(stage, "autoencoder", verbose)

    stage = time.perf_counter()
    n_neighbors = min(params.n_neighbors, n - 1)
    knn_indices, knn_distances = exact_knn(codes, n_neighbors)
    codes_np = codes.cpu().numpy()
    timings["knn"] = _lap(stage, "k-nearest neighbours", verbose)

    stage = time.perf_counter()
    embedding = umap_embedding(
        codes_np,
        knn_indices,
        knn_distances,
        n_components=params.umap_components,
        n_epochs=params.umap_epochs,
        seed=seed,
        verbose=verbose,
    )
    timings["umap"] = _lap(stage, "UMAP", verbose)

    # Step 1: the first centroids, from a Gaussian mixture on the embedding.
    stage = time.perf_counter()
    labels, centroids = _mixture(embedding, n_clusters, params.mixture_inits, seed)
    initial_labels = labels.copy()
    timings["mixture"] = _lap(stage, "Gaussian mixture", verbose)

    # The loop: steps 2-4 on the confident members.
    stage = time.perf_counter()
    network, labels, centroids, input_centroids, history, converged = self_labelling_loop(
        samples,
        labels,
        centroids,
        embedding,
        torch.from_numpy(knn_indices[:, 1:]),
        params,
        generator,
        bfloat16=bfloat16,
        verbose=verbose,
        callbacks=callbacks,
        record_centroids=record_centroids,
    )
    timings["loop"] = _lap(stage, "self-labelling loop", verbose)

    initial_input_centroids, _ = input_space_means(rows, initial_labels, n_clusters)
    for record in history:  # in the input's units, as the pixel loop records them
        record["inertia"] /= scale**2
        if "centroids" in record:
            record["centroids"] = record["centroids"] / scale
    inertia = history[-1]["inertia"]
    timings["total"] = time.perf_counter() - started
    return LearnedResult(
        labels=labels,
        centroids=centroids,
        input_centroids=input_centroids / scale,
        initial_input_centroids=initial_input_centroids / scale,
        inertia=inertia,
        network=network,
        input_shape=input_shape,
        scale=scale,
        autoencoder=autoencoder,
        embedding=embedding,
        initial_labels=initial_labels,
        history=history,
        timings=timings,
        n_iter=len(history),
        converged=converged,
    )


def self_labelling_loop(
    samples: torch.Tensor,
    labels: np.ndarray,
    centroids: np.ndarray,
    embedding: np.ndarray,
    neighbours: torch.Tensor,
    params: LearnedParams,
    generator: torch.Generator,
    *,
    bfloat16: bool = False,
    verbose: int = 0,
    callbacks: Sequence[LearnedCallback] = (),
    record_centroids: bool = False,
) -> tuple[LearnedNetwork, np.ndarray, np.ndarray, np.ndarray, list[dict], bool]:
    """Steps 2-4 of the loop, from the first clusters, until they settle or ``max_iter``.

    Parameters
    ----------
    samples : torch.Tensor of shape (n, *input_shape), float32
        On the training device.
    labels : ndarray of shape (n,), int64
        The first clusters.
    centroids : ndarray of shape (K, m)
        Their centroids in the embedding.
    embedding : ndarray of shape (n, m)
    neighbours : torch.Tensor of shape (n, k), int64
        Each sample's nearest neighbours (itself excluded), for the confidence.
    params : LearnedParams
    generator : torch.Generator
        Draws the mini-batches and augmentations.

    Returns
    -------
    network : LearnedNetwork
        In eval mode.
    labels : ndarray of shape (n,), int64
    centroids : ndarray of shape (K, m)
    input_centroids : ndarray of shape (K, d)
        The clusters' means in the samples' space (scaled units), from the last
        iteration (:func:`input_space_means`; its inertia is in the last record).
    history : list of dict
    converged : bool
    """
    n_clusters = centroids.shape[0]
    input_shape = tuple(samples.shape[1:])
    is_image = len(input_shape) == 3
    device = samples.device
    rows = samples.reshape(samples.shape[0], -1)
    network = _fresh_network(input_shape, n_clusters, rows, is_image, device)
    probabilities = None
    history: list[dict] = []
    converged = False
    for iteration in range(1, params.max_iter + 1):
        tick = time.perf_counter()
        members = confident_members(
            labels,
            neighbours,
            embedding,
            centroids,
            n_clusters,
            params.confident_fraction,
            probabilities,
            params.confidence,
        )
        if iteration > 1 and not params.warm_start:
            network = _fresh_network(input_shape, n_clusters, rows, is_image, device)
        loss = _train(network, samples, labels, members, params, generator, is_image, bfloat16)
        probabilities = _network_outputs(network, samples, device, 1024).numpy()
        new_labels = probabilities.argmax(axis=1).astype(np.int64)
        changed = float(np.mean(new_labels != labels))
        labels = new_labels
        centroids = _cluster_means(embedding, labels, n_clusters, centroids)
        input_centroids, inertia = input_space_means(rows, labels, n_clusters)
        record = {
            "iteration": iteration,
            "loss": loss,
            "changed": changed,
            "inertia": inertia,
            "sizes": np.bincount(labels, minlength=n_clusters).tolist(),
            "confident": int(sum(len(m) for m in members)),
            "seconds": time.perf_counter() - tick,
        }
        if record_centroids:
            record["centroids"] = input_centroids
        history.append(record)
        if verbose:
            print(
                f"iteration {iteration:3d}  loss {loss:.4f}  changed {changed:.4f}  "
                f"trained on {record['confident']}  ({record['seconds']:.1f} s)",
                file=sys.stderr,
            )
        stop = any(bool(callback(iteration, record)) for callback in callbacks)
        converged = changed <= params.tol
        if converged or stop:
            break
    return network.eval(), labels, centroids, input_centroids, history, converged


def _fresh_network(
    input_shape: tuple[int, ...],
    n_clusters: int,
    rows: torch.Tensor,
    is_image: bool,
    device: torch.device,
) -> LearnedNetwork:
    network = LearnedNetwork(input_shape, n_clusters)
    if not is_image:
        mean, spread = _mean_and_scale(rows)
        network.body[0] = Standardize(mean.cpu(), spread)
    return network.to(device)


def confident_members(
    labels: np.ndarray,
    neighbours: torch.Tensor,
    embedding: np.ndarray,
    centroids: np.ndarray,
    n_clusters: int,
    fraction: float,
    probabilities: np.ndarray | None = None,
    mode: str = "agreement",
) -> list[np.ndarray]:
    """Each cluster's most confident members, the network's training set.

    Confidence is the fraction of a sample's nearest neighbours that share its
    cluster (the k-NN graph of the codes); ties, frequent, are broken by the
    distance to the cluster's centroid in the embedding (nearer first).

    Parameters
    ----------
    labels : ndarray of shape (n,), int64
    neighbours : torch.Tensor of shape (n, k), int64
        Each sample's neighbours, itself excluded.
    embedding : ndarray of shape (n, m)
    centroids : ndarray of shape (K, m)
    n_clusters : int
    fraction : float
        The share of each cluster to keep (at least one member of a non-empty one).

    Returns
    -------
    list of K ndarrays of int64
        The indices of each cluster's kept members, most confident first (empty for
        an empty cluster).
    """
    label_t = torch.from_numpy(labels)
    agreement = (label_t[neighbours] == label_t[:, None]).double().mean(dim=1).numpy()
    distance = ((embedding - centroids[labels]) ** 2).sum(axis=1)
    if probabilities is not None and mode != "agreement":
        own = probabilities[np.arange(len(labels)), labels]
        agreement = own if mode == "network" else agreement * own
    members = []
    for k in range(n_clusters):
        idx = np.flatnonzero(labels == k)
        order = np.lexsort((distance[idx], -agreement[idx]))
        keep = max(1, int(fraction * len(idx))) if len(idx) else 0
        members.append(idx[order[:keep]])
    return members


def _train(
    network: nn.Module,
    samples: torch.Tensor,
    labels: np.ndarray,
    members: list[np.ndarray],
    params: LearnedParams,
    generator: torch.Generator,
    is_image: bool,
    bfloat16: bool,
) -> float:
    """``steps_per_iter`` Adam steps of cross-entropy on class-balanced mini-batches of
    the confident members (a cluster drawn uniformly, then one of its members)."""
    present = [m for m in members if len(m)]
    sizes = torch.tensor([len(m) for m in present], dtype=torch.float64)
    flat = torch.from_numpy(np.concatenate(present))
    offsets = torch.cumsum(sizes, 0) - sizes
    targets = torch.from_numpy(labels)
    optimizer = torch.optim.Adam(network.parameters(), lr=params.learning_rate)
    steps = params.steps_per_iter
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.learning_rate, total_steps=steps
    )
    device = samples.device
    network.train()
    loss = torch.zeros(())
    for _ in range(steps):
        draws = torch.rand(2, params.batch_size, generator=generator, dtype=torch.float64)
        cluster = (draws[0] * len(present)).long()
        member = (offsets[cluster] + (draws[1] * sizes[cluster]).floor()).long()
        chosen = flat[member]
        batch = samples[chosen.to(device)]
        if is_image:
            batch = random_affine(batch, generator, params.max_rotation, params.max_shift)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            logits = network(batch)
        loss = nn.functional.cross_entropy(logits.float(), targets[chosen].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    network.eval()
    return float(loss.detach())


def _network_outputs(
    network: nn.Module, samples: torch.Tensor, device: torch.device, batch_size: int
) -> torch.Tensor:
    """Softmax probabilities (n, K) float32 on the CPU, through the frozen network."""
    frozen = inference_network(network, device)
    outputs = []
    with torch.inference_mode():
        for start in range(0, samples.shape[0], batch_size):
            batch = samples[start : start + batch_size].to(device)
            outputs.append(torch.softmax(frozen(batch).float(), dim=1).cpu())
    return torch.cat(outputs)


def _mixture(
    embedding: np.ndarray, n_clusters: int, n_init: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A full-covariance Gaussian mixture's clusters (n,) and means (K, m)."""
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(
        n_clusters, covariance_type="full", n_init=n_init, random_state=seed
    ).fit(embedding)
    labels = mixture.predict(embedding).astype(np.int64)
    return labels, _cluster_means(embedding, labels, n_clusters, mixture.means_)


def _cluster_means(
    points: np.ndarray, labels: np.ndarray, n_clusters: int, previous: np.ndarray
) -> np.ndarray:
    """Per-cluster means (K, m) float64; an empty cluster keeps its ``previous`` row."""
    sums = np.zeros((n_clusters, points.shape[1]))
    np.add.at(sums, labels, points)
    counts = np.bincount(labels, minlength=n_clusters)
    previous = torch.as_tensor(np.asarray(previous, dtype=np.float64))
    return centroid_means(torch.from_numpy(sums), torch.from_numpy(counts), previous).numpy()


def input_space_means(
    rows: torch.Tensor, labels: np.ndarray, n_clusters: int, chunk_size: int = 8192
) -> tuple[np.ndarray, float]:
    """The clusters' means in the samples' own space, and the inertia around them.

    Parameters
    ----------
    rows : torch.Tensor of shape (n, d), float32
    labels : ndarray of shape (n,), int64
    n_clusters : int

    Returns
    -------
    means : ndarray of shape (K, d), float64
        An empty cluster's row is zero.
    inertia : float
        Sum of squared distances of the rows to their cluster's mean (float64 sums of
        chunks: ``sum ||x||² - sum_k ||S_k||² / n_k``).
    """
    sums = torch.zeros(n_clusters, rows.shape[1], dtype=torch.float64)
    squared = 0.0
    targets = torch.from_numpy(labels)
    for start in range(0, rows.shape[0], chunk_size):
        block = rows[start : start + chunk_size].cpu().double()
        sums.index_add_(0, targets[start : start + chunk_size], block)
        squared += float((block * block).sum())
    counts = torch.bincount(targets, minlength=n_clusters)
    means = centroid_means(sums, counts, torch.zeros_like(sums))
    filled = counts > 0
    between = float(((sums[filled] ** 2).sum(dim=1) / counts[filled]).sum())
    return means.numpy(), max(squared - between, 0.0)


def _input_shape(
    sample_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
) -> tuple[int, ...]:
    """(c, h, w) for images, (d,) for rows."""
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        shape = (1, *shape) if len(shape) == 2 else shape
        if math.prod(shape) != math.prod(sample_shape):
            raise ValueError(
                f"image_shape {image_shape} does not hold the {math.prod(sample_shape)} "
                "features of a sample"
            )
        return shape
    if len(sample_shape) == 2:
        return (1, *sample_shape)
    if len(sample_shape) == 3:
        return tuple(sample_shape)
    return (math.prod(sample_shape),)


def _as_float_samples(
    data: np.ndarray, input_shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """Samples as float32 (n, *input_shape) on ``device``; uint8 divided by 255 (as the
    estimator's batches do, so the same network gives the same labels)."""
    tensor = torch.from_numpy(np.ascontiguousarray(data)).to(torch.float32)
    if data.dtype == np.uint8:
        tensor.mul_(1.0 / 255.0)
    return tensor.reshape(data.shape[0], *input_shape).to(device)


def _mean_and_scale(rows: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-feature mean (d,) and the root-mean-square distance to it."""
    rows64 = rows.double()
    mean = rows64.mean(dim=0)
    spread = float(((rows64 - mean) ** 2).sum(dim=1).mean().sqrt())
    return mean.float(), spread if spread > 0 else 1.0


def _standardized(rows: torch.Tensor) -> torch.Tensor:
    """Rows centred per feature and divided by one overall scale (Euclidean geometry kept)."""
    mean, spread = _mean_and_scale(rows)
    return (rows - mean) / spread


def _lap(stage: float, name: str, verbose: int) -> float:
    seconds = time.perf_counter() - stage
    if verbose:
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    return seconds
