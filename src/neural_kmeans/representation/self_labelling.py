"""``features="learned"``: the parts that run the neural K-means loop in a learned space.

The loop (:func:`neural_kmeans.core.loop.run_loop`) is the same as for the pixels;
this mode passes its own three parts:

1. :class:`LearnedStart`, the first clusters: images' histograms of gradient
   orientations (:mod:`.gradients`) or rows' autoencoder codes (:mod:`.autoencoder`),
   their k-nearest-neighbour graph (:mod:`.neighbours`: exact up to 50,000 samples),
   UMAP's layout of it (:mod:`.layout`), and a Gaussian mixture on that layout
   (:mod:`.mixture`), each region of touching clusters then laid out and cut again
   alone (:mod:`.regions`), for images a second time beside the hidden features of a
   network trained on them: its clusters are the first labels, their means the first
   centroids (with ``refine_rounds``, for images, a network then learns them as step 2
   does, and the graph, layout and mixture are made again from the histograms beside
   that network's hidden features);
2. :class:`ConfidentTeacher`, the training: the network learns each cluster's most
   confident members (class k for the members of cluster k) in place of the lone
   centroid: self-labelling, as DeepCluster and SCAN do. Confidence is the share of
   a sample's nearest neighbours in its cluster, ties broken by the distance to the
   centroid in the layout; mini-batches draw each cluster in proportion to its size
   (no assumption of equal clusters) and images are seen through small random
   rotations and shifts (:mod:`.augmentation`);
3. (the shared step 3: every sample's cluster is the network's predicted class;)
4. :class:`EmbeddingSpace`, the update: each centroid moves to its members' mean in
   the layout.

The network reads the samples themselves, so a fitted model clusters new samples
with the network alone. No label is read anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from neural_kmeans.core import progress
from neural_kmeans.core.assignment import Assignment, accumulate_labels
from neural_kmeans.core.centroids import centroid_means, inertia_from_sums
from neural_kmeans.core.networks import LEARNED_NETWORK, make_network
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.state import FirstClusters, LoopParts
from neural_kmeans.representation.augmentation import random_affine
from neural_kmeans.representation.autoencoder import (
    AUTOENCODER_CODES,
    AUTOENCODER_HIDDEN,
    encode,
    train_autoencoder,
)
from neural_kmeans.representation.gradients import histogram_features
from neural_kmeans.representation.layout import umap_embedding
from neural_kmeans.representation.mixture import cluster_means, mixture_clusters
from neural_kmeans.representation.neighbours import knn_graph
from neural_kmeans.representation.regions import linked_groups

if TYPE_CHECKING:
    from neural_kmeans.core.state import LoopState

#: The first clusters and what they were found in: labels (n,) int64, the mixture's
#: centroids (K, m) float64, each sample's k nearest neighbours (n, k) int64 (itself
#: excluded) and the layout (n, m) float32.
_Clusters = tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]


#: The spaces an image's neighbour graph can be built in (``LearnedParams.image_features``).
IMAGE_FEATURES = ("gradients", "autoencoder")
#: Images are described a batch of at most this many pixel values at a time (4,096
#: 28x28 images; 116 of 96x96x3): their gradients take about 40 bytes a pixel.
HISTOGRAM_BATCH_VALUES = 4096 * 784


@dataclass(frozen=True)
class LearnedParams:
    """The fixed defaults of the learned mode (none is tuned to a data set's labels).

    Attributes
    ----------
    image_features : the space of images' neighbour graph: ``"gradients"``, histograms
        of gradient orientations (:mod:`.gradients`), or ``"autoencoder"``, an
        autoencoder's codes of the pixels (feature rows always take the autoencoder, or
        the standardized rows themselves below ``autoencoder_min_samples`` samples).
    autoencoder_hidden, autoencoder_codes : the autoencoder's widths (DEC/N2D's).
    autoencoder_epochs : passes over the data (at least ``autoencoder_min_steps``
        mini-batches of ``autoencoder_batch_size``).
    n_neighbors : neighbours of the k-NN graph (UMAP's and the confidence's).
    umap_components, umap_epochs : UMAP's output dimension and layout epochs
        (None: umap-learn's default).
    mixture_inits : Gaussian mixture restarts; the one of highest likelihood is kept.
    max_iter, tol : iterations of the loop; stop when at most ``tol`` of the samples
        changed cluster.
    steps_per_iter, train_epochs, train_min_steps, batch_size, learning_rate : training
        of the network in each iteration (Adam, one-cycle schedule): ``train_epochs``
        passes over the confident members, at least ``train_min_steps`` and at most
        ``steps_per_iter`` mini-batches of ``batch_size``.
    confident_fraction : the share of each cluster (its most confident members) the
        network is trained on.
    refine_rounds : for images, the times the first clusters are found again: a fresh
        network learns them as step 2 does, and the neighbour graph, layout and mixture
        are made again from the first space beside that network's hidden features
        (DeepCluster's alternation; rows take none). Measured (docs/learned.md): NMI a
        little higher, ACC as before, the fit about 1.8 times as long; 0 by default.
    region_share : two clusters whose samples' neighbour edges go to each other at this
        share or more (the mean of both directions) are in one region; each region is
        laid out and cut again alone into as many clusters (:mod:`.regions`); None: no
        region is.
    region_network : for images, the regions are then laid out and cut a second time,
        in the first space beside the hidden features of a fresh network trained on
        the clusters as step 2 trains (as ``refine_rounds`` does, for the regions
        alone; rows and fits without a region skip it).
    balanced_batches : draw each cluster equally often (class-balanced mini-batches)
        instead of in proportion to its size (:class:`MemberDraws`).
    max_rotation, max_shift : image augmentation (degrees; fraction of the side).
    progress : report the stages (a line with each one's time, bars for the long ones)
        even at ``verbose=0``, without the loop's iteration lines: for callers that
        print their own (the command line).
    """

    image_features: str = "gradients"
    autoencoder_hidden: tuple[int, ...] = AUTOENCODER_HIDDEN
    autoencoder_codes: int = AUTOENCODER_CODES
    autoencoder_epochs: float = 20.0
    autoencoder_min_steps: int = 500
    autoencoder_batch_size: int = 256
    autoencoder_learning_rate: float = 1e-3
    autoencoder_min_samples: int = 5000
    n_neighbors: int = 20
    umap_components: int = 10
    umap_epochs: int | None = 200
    mixture_inits: int = 10
    max_iter: int = 1
    tol: float = 0.0
    steps_per_iter: int = 2000
    train_epochs: float = 10.0
    train_min_steps: int = 500
    batch_size: int = 128
    learning_rate: float = 3e-3
    confident_fraction: float = 0.95
    refine_rounds: int = 0
    region_share: float | None = 0.01
    region_network: bool = True
    balanced_batches: bool = False
    max_rotation: float = 10.0
    max_shift: float = 0.07
    bfloat16: bool | None = None  # None: where the hardware has it (see use_bfloat16)
    progress: bool = False


def learned_params(overrides: dict | None = None) -> LearnedParams:
    """:class:`LearnedParams` with the given fields changed (``NeuralKMeans.learned_params``).

    Raises
    ------
    TypeError, ValueError
        Not a dict, a name that is not a field, or a value that cannot be one.
    """
    if overrides is None:
        return LearnedParams()
    if not isinstance(overrides, dict):
        raise TypeError(
            f"learned_params must be None or a dict of LearnedParams fields, got {overrides!r}"
        )
    fields = [f.name for f in dataclasses.fields(LearnedParams)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"learned_params has unknown names {', '.join(map(repr, unknown))}; "
            f"the names are: {', '.join(fields)}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    # scikit-learn's validation (a bool is no number here); autoencoder_hidden has none
    from sklearn.utils._param_validation import validate_parameter_constraints

    constraints = learned_params_constraints()
    validate_parameter_constraints(constraints, values, "learned_params")
    for name, value in values.items():
        counted = constraints.get(name, [None])[0]
        if isinstance(value, bool | np.bool_) and getattr(counted, "type", None) is not None:
            raise TypeError(f"learned_params {name} must be a number, not a bool")
    hidden = values.get("autoencoder_hidden", ())
    if not isinstance(hidden, tuple) or not all(
        isinstance(width, int | np.integer) and not isinstance(width, bool) and width > 0
        for width in hidden
    ):
        raise ValueError(
            f"learned_params autoencoder_hidden must be a list of positive layer widths, "
            f"for example [500, 500, 2000], got {hidden!r}"
        )
    return LearnedParams(**values)


def learned_params_constraints() -> dict[str, list]:
    """Each :class:`LearnedParams` field's allowed values, in scikit-learn's terms."""
    from numbers import Integral, Real

    from sklearn.utils._param_validation import Interval, StrOptions

    def count(low: int) -> list:
        return [Interval(Integral, low, None, closed="left")]

    def amount(low: float, high: float | None = None, closed: str = "left") -> list:
        return [Interval(Real, low, high, closed=closed)]

    return {
        "image_features": [StrOptions(set(IMAGE_FEATURES))],
        "autoencoder_codes": count(1),
        "autoencoder_epochs": amount(0),
        "autoencoder_min_steps": count(0),
        "autoencoder_batch_size": count(1),
        "autoencoder_learning_rate": amount(0, closed="neither"),
        "autoencoder_min_samples": count(0),
        "n_neighbors": count(2),  # the sample itself and at least one other
        "umap_components": count(1),
        "umap_epochs": [*count(1), None],
        "mixture_inits": count(1),
        "max_iter": count(1),
        "tol": amount(0),
        "steps_per_iter": count(1),
        "train_epochs": amount(0),
        "train_min_steps": count(0),
        "batch_size": count(2),  # the network's batch normalisation needs two samples
        "learning_rate": amount(0, closed="neither"),
        "confident_fraction": amount(0, 1, closed="right"),
        "refine_rounds": count(0),
        "region_share": [*amount(0, 1, closed="right"), None],
        "region_network": ["boolean"],
        "balanced_batches": ["boolean"],
        "max_rotation": amount(0, 180, closed="both"),
        "max_shift": amount(0, 1, closed="both"),
        "bfloat16": ["boolean", None],
        "progress": ["boolean"],
    }


def learned_parts(
    params: LearnedParams, n_clusters: int, seed: int, bfloat16: bool, verbose: int = 0
) -> LoopParts:
    """The loop's parts for ``features="learned"``."""
    return LoopParts(
        start=LearnedStart(params, n_clusters, seed, bfloat16, verbose),
        train=ConfidentTeacher(params, bfloat16, verbose),
        update=EmbeddingSpace(),
    )


@dataclass(frozen=True)
class LearnedStart:
    """Step 1: the learned space and the first clusters in it (see the module's notes).

    The extras it leaves for the other parts: ``embedding`` (n, m) float32, the layout;
    ``neighbours`` (n, k) int64, each sample's nearest neighbours (itself excluded);
    ``generator``, the state of the torch generator that draws the mini-batches and
    augmentations. Its info: the ``timings`` of its stages (seconds).
    """

    params: LearnedParams
    n_clusters: int
    seed: int
    bfloat16: bool
    verbose: int = 0

    def __call__(self, samples: SampleBatches, rng: np.random.RandomState) -> FirstClusters:
        params, timings = self.params, {}
        generator = torch.Generator().manual_seed(self.seed)
        if self.verbose:
            shape = "x".join(map(str, samples.input_shape))
            kind = "images" if len(samples.input_shape) == 3 else "rows"
            progress.line(
                f"learned features: {samples.n_samples:,} {kind} of {shape}, "
                f"{self.n_clusters} clusters, on {samples.device}"
                f"{' in bfloat16' if self.bfloat16 else ''}"
            )
        stage = time.perf_counter()
        codes = self._codes(samples, generator)
        _add_lap(timings, "features", stage, "features", self.verbose)
        clusters = self._clusters(codes, timings)
        images = len(samples.input_shape) == 3
        groups = self._groups(clusters) if images and params.region_network else []
        if groups:
            both = self._beside_network(samples, codes, clusters, generator, timings, "network")
            clusters = self._regions(both, clusters, groups, timings)
        for _ in range(params.refine_rounds if images else 0):
            both = self._beside_network(samples, codes, clusters, generator, timings, "refine")
            clusters = self._clusters(both, timings)
        labels, centroids, neighbours, embedding = clusters
        first = accumulate_labels(samples, labels, self.n_clusters, 8192)
        means = centroid_means(first.sums, first.weights, torch.zeros_like(first.sums))
        return FirstClusters(
            centroids=centroids,
            means=means,
            labels=labels,
            extras={
                "embedding": torch.from_numpy(embedding),
                "neighbours": neighbours,
                "generator": generator.get_state(),
            },
            info={"timings": timings},
        )

    def _clusters(self, codes: torch.Tensor, timings: dict[str, float]) -> _Clusters:
        """The clusters of ``codes`` (n, f) on their layout (:meth:`_layout`), then each
        region of touching clusters (:meth:`_groups`) laid out and cut again alone into
        as many clusters; each stage's seconds added to ``timings``."""
        clusters = self._layout(codes, self.n_clusters, timings, self.verbose)
        return self._regions(codes, clusters, self._groups(clusters), timings)

    def _groups(self, clusters: _Clusters) -> list[np.ndarray]:
        """The regions of touching clusters to lay out again (:func:`linked_groups`;
        none without ``region_share``), less a region of every cluster (the whole layout
        again) and those with too few samples for a graph or a mixture."""
        labels, _, neighbours, _ = clusters
        share, sizes = self.params.region_share, np.bincount(labels.numpy(), None, self.n_clusters)
        groups = [] if share is None else linked_groups(labels, neighbours, self.n_clusters, share)
        least = self.params.n_neighbors
        return [
            g for g in groups if len(g) < self.n_clusters and sizes[g].sum() > max(least, len(g))
        ]

    def _regions(
        self,
        codes: torch.Tensor,
        clusters: _Clusters,
        groups: list[np.ndarray],
        timings: dict[str, float],
    ) -> _Clusters:
        """``clusters`` with each group's samples laid out and cut again alone in
        ``codes`` (n, f) into as many clusters (:meth:`_layout`)."""
        labels, centroids, neighbours, embedding = clusters
        stage = time.perf_counter()
        for group in groups:
            members = torch.from_numpy(np.flatnonzero(np.isin(labels.numpy(), group)))
            inner = self._layout(codes[members.to(codes.device)], len(group), {}, 0)[0]
            labels[members] = torch.from_numpy(group)[inner]
            if self.verbose:
                progress.line(f"region of clusters {', '.join(map(str, group))} laid out again")
        if groups:
            centroids = cluster_means(torch.from_numpy(embedding), labels, None, centroids)
            _add_lap(timings, "regions", stage, "regions", self.verbose)
        return labels, centroids, neighbours, embedding

    def _beside_network(
        self,
        samples: SampleBatches,
        codes: torch.Tensor,
        clusters: _Clusters,
        generator: torch.Generator,
        timings: dict[str, float],
        key: str,
    ) -> torch.Tensor:
        """``codes`` (n, f) beside the hidden features of a fresh network trained on
        ``clusters`` (:meth:`_network_features`), each part of unit length (n, f + h);
        the network's seconds added to ``timings[key]``."""
        stage = time.perf_counter()
        hidden = _unit(self._network_features(samples, clusters, generator).sqrt_())
        _add_lap(timings, key, stage, "network features", self.verbose)
        return torch.cat([_unit(codes.clone()), hidden], 1)

    def _layout(
        self, codes: torch.Tensor, n_clusters: int, timings: dict[str, float], verbose: int
    ) -> _Clusters:
        """The k-NN graph of ``codes`` (n, f), UMAP's layout of it and the mixture's
        ``n_clusters`` clusters on the layout; each stage's seconds added to ``timings``."""
        params, stage = self.params, time.perf_counter()
        n_neighbors = min(params.n_neighbors, codes.shape[0] - 1)
        knn_indices, knn_distances = knn_graph(codes, n_neighbors, seed=self.seed, verbose=verbose)
        _add_lap(timings, "knn", stage, "k-nearest neighbours", verbose)
        stage = time.perf_counter()
        embedding = umap_embedding(
            codes.cpu().numpy(),
            knn_indices,
            knn_distances,
            n_components=params.umap_components,
            n_epochs=params.umap_epochs,
            seed=self.seed,
            verbose=verbose,
        )
        _add_lap(timings, "umap", stage, "UMAP", verbose)
        stage = time.perf_counter()
        labels, centroids = mixture_clusters(
            embedding, n_clusters, params.mixture_inits, self.seed, verbose
        )
        _add_lap(timings, "mixture", stage, "Gaussian mixture", verbose)
        return labels, centroids, torch.from_numpy(knn_indices[:, 1:].copy()), embedding

    def _network_features(
        self, samples: SampleBatches, clusters: _Clusters, generator: torch.Generator
    ) -> torch.Tensor:
        """A fresh network trained on ``clusters`` as step 2 trains the loop's
        (:class:`ConfidentTeacher`), and its hidden features of every sample (n, h),
        non-negative (they follow a ReLU and max pooling)."""
        labels, centroids, neighbours, embedding = clusters
        network = make_network(LEARNED_NETWORK, samples.input_shape, self.n_clusters)
        network = network.to(device=samples.device, dtype=samples.dtype)
        teacher = ConfidentTeacher(self.params, self.bfloat16, self.verbose)
        teacher.teach(network, samples, labels, neighbours, embedding, centroids.numpy(), generator)
        batches = (samples.as_input(rows) for _, rows in samples(1024))
        return encode(network.hidden, batches, samples.n_samples).clamp_min_(0)

    def _codes(self, samples: SampleBatches, generator: torch.Generator) -> torch.Tensor:
        """The samples in the space of the neighbour graph (n, f): images' gradient
        histograms (``image_features="gradients"``); otherwise the autoencoder's codes,
        or the standardized rows themselves where there are few samples or features."""
        params = self.params
        is_image = len(samples.input_shape) == 3
        if is_image and params.image_features == "gradients":
            per_batch = max(1, min(4096, HISTOGRAM_BATCH_VALUES // samples.n_features))
            batches = (samples.as_input(rows) for _, rows in samples(per_batch))
            return histogram_features(batches)
        mean, spread = samples.mean_and_scale(8192)

        def autoencoder_input(rows: torch.Tensor) -> torch.Tensor:
            return rows if is_image else (rows - mean) / spread

        big = samples.n_samples >= params.autoencoder_min_samples
        if samples.n_features <= params.autoencoder_codes or not big:
            return torch.cat([(rows - mean) / spread for _, rows in samples(8192)])
        autoencoder, _ = train_autoencoder(
            lambda indices: autoencoder_input(samples.rows(indices)),
            samples.n_samples,
            samples.n_features,
            samples.device,
            hidden=params.autoencoder_hidden,
            n_codes=params.autoencoder_codes,
            epochs=params.autoencoder_epochs,
            min_steps=params.autoencoder_min_steps,
            batch_size=params.autoencoder_batch_size,
            learning_rate=params.autoencoder_learning_rate,
            bfloat16=self.bfloat16,
            generator=generator,
            verbose=self.verbose,
        )
        batches = (autoencoder_input(rows) for _, rows in samples(8192))
        return encode(autoencoder.encoder, batches, samples.n_samples)


@dataclass(frozen=True)
class ConfidentTeacher:
    """Step 2: Adam steps (one-cycle schedule) of cross-entropy on mini-batches of each
    cluster's most confident members (:class:`MemberDraws`, :func:`training_steps`)."""

    params: LearnedParams
    bfloat16: bool
    verbose: int = 0

    def __call__(self, state: LoopState, samples: SampleBatches) -> dict[str, Any]:
        extras, generator = state.extras, torch.Generator()
        generator.set_state(extras["generator"])
        neighbours, embedding = extras["neighbours"], extras["embedding"].numpy()
        centroids = state.centroids.cpu().numpy()
        loss, confident = self.teach(
            state.network, samples, state.labels, neighbours, embedding, centroids, generator
        )
        extras["generator"] = generator.get_state()
        return {"loss": loss, "confident": confident}

    def teach(
        self,
        network: nn.Module,
        samples: SampleBatches,
        labels: torch.Tensor,
        neighbours: torch.Tensor,
        embedding: np.ndarray,
        centroids: np.ndarray,
        generator: torch.Generator,
    ) -> tuple[float, int]:
        """Train ``network`` on the confident members of the clusters ``labels`` (n,)
        (:func:`confident_members`, drawn by :class:`MemberDraws`); returns the last loss
        and the members' count."""
        params = self.params
        fraction = params.confident_fraction
        members = confident_members(
            labels.numpy(), neighbours, embedding, centroids, len(centroids), fraction
        )
        draws = MemberDraws(members, samples.weights, params.balanced_batches)
        optimizer = torch.optim.Adam(network.parameters(), lr=params.learning_rate)
        steps = training_steps(params, draws.n_members)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=params.learning_rate, total_steps=steps
        )
        device = samples.device
        network.train()
        loss = torch.zeros(())
        shown = progress.bar(
            steps, "self-labelled network", enabled=bool(self.verbose), unit="step"
        )
        for _ in range(steps):
            chosen = draws(params.batch_size, generator)
            batch = samples.as_input(samples.rows(chosen))
            if len(samples.input_shape) == 3:
                batch = random_affine(batch, generator, params.max_rotation, params.max_shift)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
                logits = network(batch)
            loss = nn.functional.cross_entropy(logits.float(), labels[chosen].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            shown.update(1)
        shown.close()
        network.eval()
        return float(loss.detach()), draws.n_members


@dataclass(frozen=True)
class EmbeddingSpace:
    """Step 4: the centroids live in the learned layout and move to their members' means
    there; their means in the samples' space come from step 3's sums."""

    def __call__(
        self, state: LoopState, assignment: Assignment, samples: SampleBatches, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]:
        centroids = cluster_means(
            state.extras["embedding"], assignment.labels, samples.weights, state.centroids.cpu()
        )
        means = centroid_means(assignment.sums, assignment.weights, state.means)
        return centroids, means, inertia_from_sums(assignment, means), []


def confident_members(
    labels: np.ndarray,
    neighbours: torch.Tensor,
    embedding: np.ndarray,
    centroids: np.ndarray,
    n_clusters: int,
    fraction: float,
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
    members = []
    for k in range(n_clusters):
        idx = np.flatnonzero(labels == k)
        order = np.lexsort((distance[idx], -agreement[idx]))
        keep = max(1, int(fraction * len(idx))) if len(idx) else 0
        members.append(idx[order[:keep]])
    return members


class MemberDraws:
    """Mini-batches of the confident members: a cluster is drawn, then one of its members.

    The cluster is drawn in proportion to its (weighted) number of confident members,
    so the network learns the clusters' own shares; with ``balanced`` uniformly, so
    each cluster has the same share of every batch whatever its size (class-balanced,
    an assumption of equal clusters: see docs/learned.md). Within its cluster a member
    is drawn with probability proportional to its weight (inverse transform sampling
    of the cluster's cumulative weights), uniformly when unweighted.

    Parameters
    ----------
    members : list of ndarray of int64
        Each cluster's confident members (some may be empty).
    weights : ndarray of shape (n,), optional
        The samples' weights.
    balanced : bool
    """

    def __init__(
        self, members: list[np.ndarray], weights: np.ndarray | None, balanced: bool
    ) -> None:
        present = [m for m in members if len(m)]
        self.sizes = torch.tensor([len(m) for m in present], dtype=torch.float64)
        self.flat = torch.from_numpy(np.concatenate(present))
        self.offsets = torch.cumsum(self.sizes, 0) - self.sizes
        self.cumulative = None
        mass = self.sizes
        if weights is not None:
            self.cumulative = [torch.from_numpy(np.cumsum(weights[m])) for m in present]
            mass = torch.stack([c[-1] for c in self.cumulative])
        self.shares = None if balanced else torch.cumsum(mass, 0) / mass.sum()

    @property
    def n_members(self) -> int:
        return int(self.sizes.sum())

    def __call__(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """The indices (batch_size,) int64 of one mini-batch's samples."""
        draws = torch.rand(2, batch_size, generator=generator, dtype=torch.float64)
        n_present = len(self.sizes)
        if self.shares is None:
            cluster = (draws[0] * n_present).long()
        else:
            cluster = torch.searchsorted(self.shares, draws[0], right=True).clamp(max=n_present - 1)
        if self.cumulative is None:
            position = (draws[1] * self.sizes[cluster]).floor()
        else:
            position = torch.stack(
                [
                    _draw(self.cumulative[k], u)
                    for k, u in zip(cluster.tolist(), draws[1], strict=True)
                ]
            )
        return self.flat[(self.offsets[cluster] + position).long()]


def training_steps(params: LearnedParams, n_confident: int) -> int:
    """The network's steps in one iteration: ``train_epochs`` passes over the confident
    members, at least ``train_min_steps`` and at most ``steps_per_iter`` (so the time
    grows with the samples up to a ceiling)."""
    passes = math.ceil(params.train_epochs * n_confident / params.batch_size)
    return min(params.steps_per_iter, max(params.train_min_steps, passes))


def _draw(cumulative: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The index whose share of the cumulative weights holds ``uniform`` (in [0, 1))."""
    index = torch.searchsorted(cumulative, uniform * cumulative[-1], right=True)
    return index.clamp(max=len(cumulative) - 1).double()


def _unit(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (n, f) scaled to unit length in place (zero rows stay zero)."""
    return rows.div_(rows.norm(dim=1, keepdim=True).clamp_min_(1e-12))


def _add_lap(timings: dict[str, float], key: str, stage: float, name: str, verbose: int) -> None:
    """The seconds since ``stage`` added to ``timings[key]`` (and shown as ``name``)."""
    seconds = time.perf_counter() - stage
    if verbose:
        progress.line(f"{name}: {seconds:.1f} s")
    timings[key] = timings.get(key, 0.0) + seconds
