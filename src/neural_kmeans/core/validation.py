"""Input checks shared by every entry point: arrays in, a clear error or a clean view out.

Everything here runs before any work (no centroid is drawn, no network built): a bad
parameter is an :class:`InvalidParameterError` (both a ``ValueError`` and a
``TypeError``, as scikit-learn's), bad data a ``ValueError`` or ``TypeError`` whose
message names the problem and the fix. The numerical guards of the loop (a loss, a
weight, a network output or a centroid that is not finite) raise :class:`DivergenceError`.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils._param_validation import InvalidParameterError as _SklearnInvalidParameterError
from sklearn.utils.validation import check_array

NETWORK_NAMES = ("auto", "cnn", "mlp", "linear", "nearest-centroid")
INIT_NAMES = ("random", "k-means++")
OPTIMIZER_NAMES = ("adam", "sgd")
#: The choices of ``NeuralKMeans(features=...)``: the samples themselves, or a learned space.
FEATURE_NAMES = ("pixels", "learned")
MNIST_FLAT_FEATURES = 28 * 28
#: The CNN's two 3x3 convolutions and 2x2 poolings need images of at least this size.
CNN_MIN_SIZE = 8
#: A mean cross-entropy on the K centroids above this means the network diverged: an
#: untrained network scores about ln K, a working one less.
MAX_TRAINING_LOSS = 1e6
#: Values read per block by the finiteness check (bounds its temporary memory).
FINITE_CHECK_BLOCK = 1 << 22
# scikit-learn 1.6 renamed check_array's force_all_finite to ensure_all_finite.
_FINITE_KEYWORD = (
    "ensure_all_finite"
    if "ensure_all_finite" in inspect.signature(check_array).parameters
    else "force_all_finite"
)


class InvalidParameterError(_SklearnInvalidParameterError):
    """A constructor parameter of :class:`~neural_kmeans.NeuralKMeans` is invalid.

    scikit-learn's own ``InvalidParameterError``: both a ``ValueError`` and a
    ``TypeError``, so either ``except`` clause catches it.
    """


class DivergenceError(FloatingPointError):
    """The loop met a value that is not finite: a loss, a network output or a centroid.

    Raised before the value reaches the centroids, the fitted attributes or a
    checkpoint, so the last checkpoint (if any) holds the last good iteration.

    Attributes
    ----------
    iteration : int
        The iteration (from 1) at which the fault was found.
    """

    def __init__(self, message: str, iteration: int) -> None:
        super().__init__(message)
        self.iteration = iteration


# ---------------------------------------------------------------------------- samples
def to_numpy_samples(
    X: Any, *, estimator_name: str = "NeuralKMeans", accept_sparse: bool = True
) -> np.ndarray | scipy.sparse.csr_array:
    """Validate samples and return them as a numpy array, without copying where possible.

    Parameters
    ----------
    X : array-like, scipy sparse matrix or array, or torch.Tensor
        Rows (n, d) or images (n, h, w) / (n, c, h, w) / (n, h, w, c) (see
        :func:`is_channels_last`: such images are copied once to channels first). uint8
        is kept as uint8 (scaled to [0, 1] later, per batch). Sparse rows (CSR, CSC,
        COO, ...) become CSR.
    estimator_name : str, default="NeuralKMeans"
        Named in the error messages.
    accept_sparse : bool, default=True

    Returns
    -------
    numpy.ndarray of the same shape (channels first), dtype uint8, float32 or float64;
    or a ``scipy.sparse.csr_array`` of float32 or float64 for sparse input.

    Raises
    ------
    TypeError
        Non-numeric data (strings, dates), sparse data where it is not accepted.
    ValueError
        Complex data, NaN or infinite values, no samples, a sample with no values, or
        a number of dimensions other than 2, 3 or 4.
    """
    if scipy.sparse.issparse(X):
        return _sparse_samples(X, estimator_name, accept_sparse)
    if isinstance(X, torch.Tensor):
        X = X.detach()
        if X.device.type == "meta":
            raise ValueError(
                f"X is a tensor on the 'meta' device, which holds shapes but no values; "
                f"{estimator_name} needs the data: create it on a real device"
            )
        if X.device.type != "cpu":
            X = X.cpu()
        if X.is_floating_point() and X.dtype not in (torch.float16, torch.float32, torch.float64):
            X = X.float()  # bfloat16 and the float8 types have no numpy equivalent
        X = X.numpy()
    if isinstance(X, np.ndarray) and X.dtype.kind not in "biufc" and X.dtype != object:
        raise TypeError(
            f"{estimator_name} needs numeric samples, got dtype {X.dtype}; "
            "convert the data to numbers (for example np.asarray(X, dtype=float))"
        )
    if isinstance(X, np.ndarray) and X.dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {X.dtype}; {estimator_name} needs real "
            "numbers: pass X.real, or np.abs(X) for magnitudes"
        )
    try:
        X = check_array(
            X,
            dtype=None if isinstance(X, np.ndarray) and X.dtype.kind in "uf" else "numeric",
            allow_nd=True,
            copy=False,
            **{_FINITE_KEYWORD: False},  # checked below, block by block, with a location
            ensure_min_samples=1,
            estimator=estimator_name,
        )
    except ValueError as problem:
        if not str(problem).startswith("could not convert"):
            raise
        raise ValueError(
            f"{estimator_name} needs numeric samples, but X holds values that are not "
            f"numbers ({problem}); convert or drop them first"
        ) from None
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{estimator_name} takes rows (n, d) or images (n, h, w) / (n, c, h, w) / "
            "(n, h, w, c); "
            f"got an array with {X.ndim} dimensions of shape {X.shape}: reshape it, "
            "for example X.reshape(len(X), -1) for flat rows"
        )
    if min(X.shape[1:]) < 1:
        raise ValueError(
            f"X has samples of shape {X.shape[1:]}, which hold no values; each sample "
            "needs at least one feature"
        )
    check_finite(X)
    X = channels_first(X)
    if X.dtype == np.uint8 or X.dtype in (np.float32, np.float64):
        return X
    if X.dtype.kind == "f":
        return X.astype(np.float32)
    return X.astype(np.float64)


#: The channel counts images have: grey, grey and alpha, RGB, RGBA.
IMAGE_CHANNELS = (1, 2, 3, 4)


def is_channels_last(sample_shape: tuple[int, ...]) -> bool:
    """Whether images of ``sample_shape`` (three numbers) hold their channels last,
    (h, w, c), as image files and most numpy code give them: the last number is a
    channel count (1 to 4) and the first is not. Otherwise they are (c, h, w), PyTorch's
    layout, which is also what the networks take."""
    return (
        len(sample_shape) == 3
        and sample_shape[-1] in IMAGE_CHANNELS
        and sample_shape[0] not in IMAGE_CHANNELS
    )


def channels_first(data: np.ndarray) -> np.ndarray:
    """``data`` with its (n, h, w, c) images (:func:`is_channels_last`) turned (n, c, h,
    w), a copy; any other data as it is."""
    if data.ndim == 4 and is_channels_last(data.shape[1:]):
        return np.ascontiguousarray(np.moveaxis(data, -1, 1))
    return data


def _sparse_samples(X: Any, estimator_name: str, accept: bool) -> scipy.sparse.csr_array:
    """Sparse rows as a float CSR array (never made dense), checked like dense ones."""
    if not accept:
        raise TypeError(
            f"{estimator_name} got sparse data where dense data is required; pass "
            "X.toarray() (or use a row network: linear, mlp, nearest-centroid)"
        )
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{estimator_name} needs numeric samples, got sparse dtype {X.dtype}")
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    rows = scipy.sparse.csr_array(X, dtype=dtype)
    if rows.shape[0] < 1 or rows.shape[1] < 1:
        raise ValueError(
            f"X has shape {rows.shape}: {estimator_name} needs at least one sample of at "
            "least one feature"
        )
    rows.sum_duplicates()
    check_finite(rows.data.reshape(-1, 1), "X (its stored values)")
    return rows


def check_finite(X: np.ndarray, name: str = "X") -> None:
    """Raise a ``ValueError`` naming the first NaN or infinite value of ``X``.

    Reads ``X`` block by block (a memory-mapped array is never loaded whole); integer
    arrays are finite by construction and are not read.

    Parameters
    ----------
    X : numpy.ndarray of shape (n, ...)
    name : str, default="X"
        The array's name in the message.
    """
    if X.dtype.kind not in "fc" or X.size == 0:
        return
    per_sample = max(1, X.size // X.shape[0])
    step = max(1, FINITE_CHECK_BLOCK // per_sample)
    for start in range(0, X.shape[0], step):
        block = X[start : start + step]
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(block.sum()):  # fast path; an overflowing sum falls through
                continue
        bad = np.argwhere(~np.isfinite(block))
        if len(bad) == 0:
            continue
        where = (start + int(bad[0][0]), *(int(i) for i in bad[0][1:]))
        value = block[tuple(bad[0])]
        kind = "NaN" if np.isnan(value) else "infinity"
        raise ValueError(
            f"{name} contains {kind} (the first non-finite value is at index {where}); "
            "NeuralKMeans needs finite values (no NaN, no infinity): drop those samples, "
            "impute the missing values (for example sklearn.impute.SimpleImputer) or "
            "replace infinite values (np.nan_to_num)"
        )


def check_value_range(X: Any, dtype: torch.dtype, name: str = "X") -> None:
    """Raise a ``ValueError`` when ``X`` holds finite values so large that squared
    distances between samples overflow ``dtype``, in which the fit computes.

    The bound, ``sqrt(max / d) / 2`` for ``d`` features, keeps every squared distance
    between two samples finite (k-means++, inertia, the nearest-centroid network).
    Reads ``X`` block by block, like :func:`check_finite`; sparse rows by their values;
    integer arrays of up to 32 bits are always in range and are not read.
    """
    values = X.data if scipy.sparse.issparse(X) else X
    if values.size == 0 or (values.dtype.kind in "biu" and values.dtype.itemsize <= 4):
        return
    n_features = math.prod(X.shape[1:])
    limit = math.sqrt(float(torch.finfo(dtype).max) / n_features) / 2
    flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    step = max(1, FINITE_CHECK_BLOCK // flat.shape[1])
    for start in range(0, flat.shape[0], step):
        largest = float(np.abs(flat[start : start + step]).max())
        if largest > limit:
            raise ValueError(
                f"{name} holds values up to {largest:.3g} in magnitude: squared distances "
                f"between such samples overflow {str(dtype).removeprefix('torch.')}, in "
                f"which the fit computes (values up to {limit:.3g} fit, for {n_features} "
                "features); rescale the data (for example "
                "sklearn.preprocessing.StandardScaler, or divide by its largest value)"
            )


def resolve_image_shape(
    sample_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """The (c, h, w) shape of one sample, or None for plain rows.

    ``sample_shape`` is ``X.shape[1:]``. Flat rows take ``image_shape`` when given
    ((h, w) or (c, h, w)); 784 features are read as 28x28 greyscale.
    """
    wanted = None if image_shape is None else check_image_shape(image_shape)
    if len(sample_shape) in (2, 3):
        found = tuple(int(s) for s in sample_shape)
        found = found if len(found) == 3 else (1, *found)
        if wanted is not None and found not in (wanted, (1, *wanted)):
            raise ValueError(
                f"image_shape={wanted} contradicts the images' shape {tuple(sample_shape)}; "
                "leave image_shape=None for images (it is read from X) or make them agree"
            )
        return found
    if wanted is None:
        return (1, 28, 28) if sample_shape[0] == MNIST_FLAT_FEATURES else None
    found = wanted if len(wanted) == 3 else (1, *wanted)
    if math.prod(found) != sample_shape[0]:
        raise ValueError(
            f"image_shape={wanted} does not fit rows of {sample_shape[0]} features; "
            "give (h, w) or (c, h, w) whose product is the number of features"
        )
    return found


def check_image_shape(image_shape: Any) -> tuple[int, ...]:
    """``image_shape`` as a tuple of 2 or 3 positive ints, or an InvalidParameterError."""
    if isinstance(image_shape, str | bytes) or not isinstance(image_shape, Sequence | np.ndarray):
        raise InvalidParameterError(
            f"image_shape must be None or a tuple (h, w) or (c, h, w) of positive "
            f"integers, got {image_shape!r}"
        )
    items = list(image_shape)
    positive = (
        isinstance(s, Integral) and not isinstance(s, bool | np.bool_) and s >= 1 for s in items
    )
    if len(items) not in (2, 3) or not all(positive):
        raise InvalidParameterError(
            f"image_shape must be a tuple (h, w) or (c, h, w) of positive integers, got "
            f"{tuple(items)!r}; for example image_shape=(28, 28)"
        )
    return tuple(int(s) for s in items)


def random_state_of(random_state: Any) -> np.random.RandomState:
    """scikit-learn's ``check_random_state``; a numpy Generator seeds a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(np.iinfo(np.int32).max)))
    return check_random_state(random_state)


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as a float64 array of ``n_samples`` finite non-negative values
    with a positive sum (a scalar weighs every sample alike); None stays None."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"sample_weight must be numbers, one per sample, got {_short(sample_weight)}"
        ) from None
    if weights.ndim == 0:
        weights = np.full(n_samples, float(weights))
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}; expected ({n_samples},): one weight "
            "per sample"
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(
            f"sample_weight must be finite and non-negative; got min {weights.min():g}"
        )
    if weights.sum() <= 0:
        raise ValueError(
            "sample_weight is zero for every sample: give at least one sample a positive weight"
        )
    return weights


# ------------------------------------------------------------------------- parameters
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: An example of a good value, for the messages of refused parameters.
_EXAMPLES = {
    "n_clusters": 10,
    "steps_per_iter": 10,
    "max_iter": 20,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "tol": 1e-4,
    "random_state": 0,
}


#: ``NeuralKMeans``'s parameters, declared as scikit-learn declares its estimators'.
PARAMETER_CONSTRAINTS: dict[str, list] = {
    "n_clusters": [Interval(Integral, 1, None, closed="left")],
    "network": [StrOptions(set(NETWORK_NAMES)), callable],
    "init": [StrOptions(set(INIT_NAMES)), "array-like", callable],
    "n_init": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "steps_per_iter": [Interval(Integral, 1, None, closed="left")],
    "optimizer": [StrOptions(set(OPTIMIZER_NAMES))],
    "learning_rate": [Interval(Real, 0, _FLOAT32_MAX, closed="right"), None],
    "max_iter": [Interval(Integral, 1, None, closed="left"), None],
    "tol": [Interval(Real, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), None],
    "image_shape": [tuple, list, np.ndarray, None],
    "device": [str, torch.device],
    "random_state": ["random_state", np.random.Generator],
    "verbose": ["verbose"],
    "record_centroids": ["boolean"],
    "callbacks": [callable, list, tuple, None],
    "features": [StrOptions(set(FEATURE_NAMES))],
    "learned_params": [dict, None],
    "checkpoint_dir": [str, os.PathLike, None],
}


def check_parameters(
    params: dict[str, Any], caller: str = "NeuralKMeans", constraints: dict | None = None
) -> None:
    """``NeuralKMeans``'s parameters against :data:`PARAMETER_CONSTRAINTS` (scikit-learn's
    validation), then the checks that need more than a type.

    Raises
    ------
    InvalidParameterError
        scikit-learn's message, with a likely fix added.
    """
    try:
        validate_parameter_constraints(constraints or PARAMETER_CONSTRAINTS, params, caller)
    except (ValueError, TypeError) as problem:
        raise InvalidParameterError(_with_hint(str(problem), params)) from None
    for name in ("n_clusters", "steps_per_iter", "max_iter", "batch_size"):
        if isinstance(params[name], bool | np.bool_):
            raise InvalidParameterError(
                f"{name} must be an integer, not a bool; for example {name}={_EXAMPLES[name]}"
            )
    if not isinstance(params["init"], str) and not callable(params["init"]):
        check_init_array(params["init"], params["n_clusters"])
    if params["image_shape"] is not None:
        check_image_shape(params["image_shape"])
    check_device(params["device"])
    callbacks = params["callbacks"]
    if isinstance(callbacks, list | tuple) and not all(map(callable, callbacks)):
        raise InvalidParameterError(
            "callbacks must all be callables callback(state) -> stop?, got "
            f"{next(c for c in callbacks if not callable(c))!r} in the list"
        )


def check_centers_shape(
    centers: np.ndarray, n_clusters: int, n_features: int | None, error: type = ValueError
) -> None:
    """Initial centroids of ``n_clusters`` rows of ``n_features`` values each (scikit-learn's
    wording of the two mistakes)."""
    if centers.ndim < 2 or centers.shape[0] != n_clusters or 0 in centers.shape:
        raise error(
            f"The shape of the initial centers {centers.shape} does not match the number "
            f"of clusters {n_clusters}: give {n_clusters} centroids, one per row"
        )
    features = int(np.prod(centers.shape[1:]))
    if n_features is not None and features != n_features:
        raise error(
            f"The shape of the initial centers {centers.shape} does not match the number "
            f"of features of the data {n_features}: give centroids of {n_features} values"
        )


def check_init_array(init: Any, n_clusters: int, n_features: int | None = None) -> np.ndarray:
    """``init`` given as centroids: a finite numeric array of ``n_clusters`` rows.

    With ``n_features`` the centroids must also have that many values each. Returns
    them as a float64 array of shape (K, n_features) (or (K, -1) without it).
    """
    try:
        given = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        given = None
    if given is None or given.ndim == 0:  # not numbers, or a single number
        raise InvalidParameterError(
            "init must be 'random', 'k-means++' or an array of "
            f"{n_clusters} centroids, got {_short(init)}"
        )
    check_centers_shape(given, n_clusters, n_features, InvalidParameterError)
    flat = given.reshape(n_clusters, -1)
    if not np.isfinite(flat).all():
        raise InvalidParameterError(
            "init array holds NaN or infinite values; give finite centroids"
        )
    return flat


def resolve_device(device: Any) -> torch.device:
    """The device ``device`` names (checked); ``"auto"`` is CUDA when present, else the CPU."""
    resolved = check_device(device)
    if resolved is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolved


def check_device(device: Any) -> torch.device | None:
    """The torch device ``device`` names (None for ``"auto"``); it must exist here."""
    if isinstance(device, str) and device == "auto":
        return None
    if not isinstance(device, str | torch.device):
        raise InvalidParameterError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
        )
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameterError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidParameterError(
                f"device={device!r} but CUDA is not available on this machine; "
                "use device='cpu' (or 'auto', which takes CUDA only when present)"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} "
                "CUDA device(s); use an index below that, or device='cuda'"
            )
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidParameterError(
                f"device={device!r} but MPS is not available here; use device='cpu'"
            )
    elif resolved.type != "cpu":
        raise InvalidParameterError(
            f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    return resolved


def _with_hint(message: str, params: dict[str, Any]) -> str:
    """scikit-learn's message about a refused parameter, with a likely fix added."""
    for name, value in params.items():
        if f"'{name}' parameter" not in message:
            continue
        choices = {
            "network": NETWORK_NAMES,
            "init": INIT_NAMES,
            "optimizer": OPTIMIZER_NAMES,
            "features": FEATURE_NAMES,
        }.get(name)
        if choices and isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), list(choices), n=1)
            if close:
                return f"{message} Did you mean {name}={close[0]!r}?"
        if name in _EXAMPLES:
            return f"{message} For example {name}={_EXAMPLES[name]!r}."
    return message


def check_data_for_params(
    estimator: Any,
    sample_shape: tuple[int, ...],
    n_samples: int,
    image_shape: tuple[int, ...] | None,
    network_name: Any,
) -> None:
    """Checks that need both the parameters and the data's shape (before any work).

    Parameters
    ----------
    estimator : NeuralKMeans
    sample_shape : tuple of int
        ``X.shape[1:]``.
    n_samples : int
    image_shape : tuple of int or None
        The samples' resolved (c, h, w), or None for rows.
    network_name : str or callable
        The network after resolving ``"auto"``.
    """
    k = estimator.n_clusters
    if n_samples < k:
        raise ValueError(
            f"n_samples={n_samples} should be >= n_clusters={k}: give more samples "
            "or ask for fewer clusters"
        )
    n_features = math.prod(sample_shape)
    if not isinstance(estimator.init, str) and not callable(estimator.init):
        check_init_array(estimator.init, k, n_features)
    if network_name == "cnn":  # "auto" takes the CNN only for images it fits
        if image_shape is None:
            raise ValueError(
                f"network='cnn' needs images: rows of {n_features} features have no known "
                "image shape; pass image_shape=(h, w) or use network='mlp'"
            )
        height, width = image_shape[1:]
        if min(height, width) < CNN_MIN_SIZE:
            raise ValueError(
                f"network='cnn' needs images of at least {CNN_MIN_SIZE}x{CNN_MIN_SIZE} pixels, "
                f"got {height}x{width}; use network='mlp' for smaller images"
            )


# ------------------------------------------------------------------ numerical faults
def check_training_loss(iteration: int, loss: float, network: torch.nn.Module, rate: float) -> None:
    """A finite loss (at most :data:`MAX_TRAINING_LOSS`) and finite weights after step 2.

    Else a :class:`DivergenceError` naming the iteration.
    """
    if not math.isfinite(loss) or loss > MAX_TRAINING_LOSS:
        raise DivergenceError(
            f"iteration {iteration}: the training loss is {loss:g}"
            + ("" if not math.isfinite(loss) else f" (above {MAX_TRAINING_LOSS:g})")
            + f"; the network diverged. Lower learning_rate (now {rate:g}), scale the data "
            "down or check the network",
            iteration,
        )
    tensors = {k: t for k, t in network.state_dict().items() if t.is_floating_point()}
    if not tensors:
        return
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(finite.all()):
        return
    name = list(tensors)[int(torch.nonzero(~finite)[0])]
    raise DivergenceError(
        f"iteration {iteration}: the network's {name} holds NaN or infinite values after "
        f"training; the network diverged. Lower learning_rate (now {rate:g})",
        iteration,
    )


def check_finite_centroids(iteration: int, centroids: torch.Tensor, inertia: float) -> None:
    """Finite new centroids and inertia after step 4, else a :class:`DivergenceError`."""
    if not bool(torch.isfinite(centroids).all()) or not math.isfinite(inertia):
        raise DivergenceError(
            f"iteration {iteration}: the new centroids or the inertia are not finite "
            f"(inertia {inertia}); the data's values overflow the computation — scale them "
            "down (for example sklearn.preprocessing.StandardScaler)",
            iteration,
        )


def check_network_outputs(
    iteration: int, network: torch.nn.Module, inputs: Sequence[torch.Tensor]
) -> None:
    """Finite eval-mode outputs on probe ``inputs``, else a :class:`DivergenceError`.

    The probes (the centroids and a few samples, in the network's input layout) are
    run without gradients and in eval mode, which draws no random numbers and changes
    no state, so the fit's result does not depend on the check.
    """
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            verdicts = [torch.isfinite(network(x)).all() for x in inputs]
    finally:
        network.train(was_training)
    if verdicts and not bool(torch.stack(verdicts).all()):
        raise DivergenceError(
            f"iteration {iteration}: the network's outputs hold NaN or infinite values, so "
            "its clusters would be meaningless; the network diverged. Lower learning_rate "
            "or check the network",
            iteration,
        )


# ---------------------------------------------------------------------------- helpers
def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
