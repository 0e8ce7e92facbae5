"""Pixel preprocessing: per-channel normalisation and the two ZCA whitenings.

Dataset distillation uses two incompatible ZCAs (docs/methods.md section 0):

* ``raw`` (MTT, DATM, PAD): kornia's ``ZCAWhitening(eps=0.1)`` fitted on ToTensor
  images in [0, 1], with no mean/std normalisation: subtract the per-feature mean,
  take the unbiased (N - 1) covariance, ``W = U diag(1 / sqrt(S + eps)) U^T``.
* ``krr`` (KIP, FRePo, RaT-BPTT, PoDD): every image is first centred (mean over
  H, W, C) and scaled to unit L2 norm; then the second-moment matrix ``X^T X / N``
  (no per-feature mean, as in those codes), and eigenvalues regularised by
  ``reg * mean(S)`` (= ``reg * trace / D``): ``W = U diag(1 / sqrt(S + reg mean(S))) U^T``.

Both act on flattened images ``[N, D]`` with ``D = H * W * C`` (3072 for CIFAR), from
the right: ``x_white = (x - mean) @ W``. ``W`` is symmetric, so its inverse is
``U diag(sqrt(S + eps)) U^T``; the krr variant cannot undo the per-image step (the
image's own mean and norm are not stored), see ``zca_invert``.

The fits run in float64 on the host; the stored matrices are float32, the precision
the transforms are applied in (as kornia does). Functions here are pure; ``zca_apply``,
``zca_invert`` and ``normalize`` only use array methods and operators, so they also
accept ``jax.numpy`` arrays, inside ``jit`` too.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np

from jaxdd.errors import ConfigError, DataError

ZCA_MODES = ('none', 'raw', 'krr')

# Per-channel (mean, std) of the train splits of the usual benchmarks, as published
# by the reference codes; keys are tfds names / npz file stems.
KNOWN_STATS = {
    'mnist': ((0.1307,), (0.3081,)),
    'fashion_mnist': ((0.2861,), (0.3530,)),
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    'cifar100': ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    'svhn': ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
_STATS_ALIASES = {'svhn_cropped': 'svhn', 'fashionmnist': 'fashion_mnist'}

# Rows per block when accumulating X^T X: bounds the float64 copy to ~32 MB.
_BLOCK_FLOATS = 1 << 22


class ZCA(NamedTuple):
  """A fitted ZCA whitening, acting on flattened images from the right.

  Attributes:
    mean: float32 [D], subtracted before whitening (zeros for the krr variant).
    whiten: float32 [D, D], symmetric ``W``.
    unwhiten: float32 [D, D], ``W^-1``.
    per_image_normalize: whether each image is centred and L2-normalised first (krr).
    shape: (H, W, C) of the images it was fitted on.
  """
  mean: np.ndarray
  whiten: np.ndarray
  unwhiten: np.ndarray
  per_image_normalize: bool
  shape: tuple


# ----------------------------------------------------------------------------------
# Normalisation.
# ----------------------------------------------------------------------------------


def known_stats(key: Optional[str], channels: int):
  """Published per-channel statistics of a benchmark, if ``key`` names one.

  Args:
    key: a tfds name or npz file stem, e.g. 'cifar10', 'svhn_cropped', 'mnist'.
    channels: C of the loaded images; a table entry with another channel count is
      ignored (e.g. a grayscale file that happens to be called cifar10.npz).

  Returns:
    (mean float32 [C], std float32 [C]), or None when unknown.
  """
  if not key:
    return None
  key = key.lower().replace('-', '_')
  entry = KNOWN_STATS.get(_STATS_ALIASES.get(key, key))
  if entry is None or len(entry[0]) != channels:
    return None
  return np.asarray(entry[0], np.float32), np.asarray(entry[1], np.float32)


def compute_stats(x: np.ndarray):
  """Per-channel mean and (population) std of images ``x`` [N, H, W, C].

  Returns:
    (mean float32 [C], std float32 [C]); a constant channel gets std 1 so that
    normalising it cannot divide by zero.
  """
  axes = tuple(range(x.ndim - 1))
  mean = x.mean(axis=axes, dtype=np.float64)
  std = x.std(axis=axes, dtype=np.float64)
  std = np.where(std > 0, std, 1.0)
  return mean.astype(np.float32), std.astype(np.float32)


def normalize(x, mean, std):
  """``(x - mean) / std`` per channel (the last axis). Works for numpy and jnp."""
  return (x - mean) / std


# ----------------------------------------------------------------------------------
# ZCA.
# ----------------------------------------------------------------------------------


def _flatten(x) -> Tuple[np.ndarray, tuple]:
  """[N, H, W, C] -> ([N, D], (H, W, C)); needs at least two images."""
  x = np.asarray(x)
  if x.ndim < 2:
    raise DataError(f'ZCA needs a batch of images [N, H, W, C], got shape {x.shape}')
  if x.shape[0] < 2:
    raise DataError(f'ZCA needs at least 2 images to estimate a covariance, got {x.shape[0]}')
  return x.reshape(x.shape[0], -1), tuple(x.shape[1:])


def _per_image_normalize(flat):
  """Centres each row [N, D] and scales it to unit L2 norm (numpy or jnp).

  A constant image has norm 0 after centring; it is left at zero instead of
  becoming NaN (the reference codes do not guard this).
  """
  flat = flat - flat.mean(axis=1, keepdims=True)
  norms = ((flat * flat).sum(axis=1, keepdims=True)) ** 0.5
  return flat / (norms + (norms == 0))


def _scatter(flat: np.ndarray, mean: np.ndarray, per_image: bool) -> np.ndarray:
  """``sum_i (x_i - mean)(x_i - mean)^T`` in float64, block by block to bound memory."""
  n, d = flat.shape
  block = max(1, _BLOCK_FLOATS // d)
  acc = np.zeros((d, d), np.float64)
  for start in range(0, n, block):
    b = flat[start:start + block].astype(np.float64)
    if per_image:
      b = _per_image_normalize(b)
    b -= mean
    acc += b.T @ b
  return acc


def _from_eigen(u, s, mean, per_image, shape) -> ZCA:
  """Builds the ZCA from the eigenvectors ``u`` and the regularised eigenvalues ``s``."""
  whiten = (u * (1.0 / np.sqrt(s))) @ u.T
  unwhiten = (u * np.sqrt(s)) @ u.T
  return ZCA(mean.astype(np.float32), whiten.astype(np.float32),
             unwhiten.astype(np.float32), per_image, shape)


def _eigh(cov):
  """Eigen-decomposition of a symmetric PSD matrix; round-off negatives clipped to 0."""
  s, u = np.linalg.eigh(cov)
  return u, np.clip(s, 0.0, None)


def zca_fit_raw(x, eps: float = 0.1) -> ZCA:
  """Fits MTT's ZCA (kornia ``ZCAWhitening(eps)``) on images ``x``.

  Args:
    x: [N, H, W, C] images, as they are (MTT uses un-normalised [0, 1] pixels).
    eps: added to every covariance eigenvalue; 0.1 in MTT, DATM and PAD.

  Returns:
    A ``ZCA`` with the per-feature mean and ``W = U diag(1/sqrt(S + eps)) U^T``,
    ``U S U^T`` the unbiased (N - 1) covariance of the flattened images.
  """
  if not eps > 0:
    raise ConfigError(f'zca eps must be positive, got {eps}')
  flat, shape = _flatten(x)
  mean = flat.mean(axis=0, dtype=np.float64)
  cov = _scatter(flat, mean, per_image=False) / (flat.shape[0] - 1)
  u, s = _eigh(cov)
  return _from_eigen(u, s + eps, mean, False, shape)


def zca_fit_krr(x, reg: float = 0.1) -> ZCA:
  """Fits the KIP/FRePo/RaT-BPTT/PoDD ZCA on images ``x``.

  Each image is centred and L2-normalised, then ``cov = X^T X / N`` (no per-feature
  mean, as in the reference codes) and ``W = U diag(1/sqrt(S + reg * mean(S))) U^T``.
  Unlike FRePo's code there is no "rank control" for N < D (eigenvalues past the
  rank keep the regularised value, as in PoDD).

  Args:
    x: [N, H, W, C] images (normally already mean/std normalised).
    reg: the eigenvalue regulariser, relative to the mean eigenvalue; 0.1 in FRePo
      and PoDD.

  Returns:
    A ``ZCA`` with ``mean = 0`` and ``per_image_normalize=True``.
  """
  if not reg > 0:
    raise ConfigError(f'zca reg must be positive, got {reg}')
  flat, shape = _flatten(x)
  mean = np.zeros(flat.shape[1], np.float64)
  cov = _scatter(flat, mean, per_image=True) / flat.shape[0]
  u, s = _eigh(cov)
  return _from_eigen(u, s + reg * s.mean(), mean, True, shape)


def _as_rows(zca: ZCA, x):
  """Checks the trailing image shape and flattens to [-1, D]."""
  shape = tuple(x.shape[x.ndim - len(zca.shape):])
  if x.ndim < len(zca.shape) or shape != tuple(zca.shape):
    raise DataError(f'ZCA was fitted on images of shape {tuple(zca.shape)}, '
                    f'got an array of shape {tuple(x.shape)}')
  return x.reshape(-1, int(np.prod(zca.shape)))


def zca_apply(zca: ZCA, x):
  """Whitens images.

  Args:
    zca: a fitted ``ZCA``.
    x: [..., H, W, C] images in the space the ZCA was fitted in (numpy or jnp).

  Returns:
    Whitened images of the same shape: ``(x - mean) @ W``, after per-image
    centring and L2 normalisation for the krr variant.
  """
  flat = _as_rows(zca, x)
  if zca.per_image_normalize:
    flat = _per_image_normalize(flat)
  return ((flat - zca.mean) @ zca.whiten).reshape(x.shape)


def zca_invert(zca: ZCA, x_white):
  """Undoes ``zca_apply``: ``x_white @ W^-1 + mean``.

  Exact for the raw variant. For krr it returns the per-image centred, unit-norm
  image, because the image's own mean and norm were discarded by ``zca_apply``.

  Args:
    zca: a fitted ``ZCA``.
    x_white: [..., H, W, C] whitened images (numpy or jnp).

  Returns:
    Images of the same shape, in the space the ZCA was fitted in.
  """
  flat = _as_rows(zca, x_white)
  return (flat @ zca.unwhiten + zca.mean).reshape(x_white.shape)


# ----------------------------------------------------------------------------------
# The whole pipeline, and its inverse.
# ----------------------------------------------------------------------------------


def check_zca_mode(zca: str) -> None:
  """ConfigError unless ``zca`` is one of ``ZCA_MODES``."""
  if zca not in ZCA_MODES:
    raise ConfigError(f'zca must be one of {", ".join(map(repr, ZCA_MODES))}, got {zca!r}')


def preprocess_splits(x_train: np.ndarray, x_test: np.ndarray, *, stats, do_normalize: bool,
                      zca: str):
  """Normalises and whitens a train/test pair of [0, 1] images [N, H, W, C].

  Args:
    x_train: float32 [N, H, W, C] in [0, 1]; all statistics are fitted on it.
    x_test: float32 [M, H, W, C] in [0, 1].
    stats: (mean [C], std [C]) to use, or None to compute them from ``x_train``.
    do_normalize: apply per-channel normalisation (ignored for zca='raw': MTT fits
      kornia's ZCA on un-normalised ToTensor images).
    zca: 'none', 'raw' or 'krr'.

  Returns:
    (x_train, x_test, mean [C], std [C], ZCA or None); mean/std are zeros/ones when
    no normalisation was applied.
  """
  check_zca_mode(zca)
  channels = x_train.shape[-1]
  if do_normalize and zca != 'raw':
    mean, std = stats if stats is not None else compute_stats(x_train)
    x_train = normalize(np.asarray(x_train, np.float32), mean, std)
    x_test = normalize(np.asarray(x_test, np.float32), mean, std)
  else:
    mean, std = np.zeros(channels, np.float32), np.ones(channels, np.float32)
  fitted = None
  if zca != 'none':
    fitted = (zca_fit_raw if zca == 'raw' else zca_fit_krr)(x_train)
    x_train, x_test = zca_apply(fitted, x_train), zca_apply(fitted, x_test)
  return (x_train.astype(np.float32, copy=False), x_test.astype(np.float32, copy=False),
          mean, std, fitted)


def _stats_of(ds_or_stats):
  """(mean, std, zca) of a Dataset-like object or a (mean, std[, zca]) tuple."""
  if hasattr(ds_or_stats, 'mean') and hasattr(ds_or_stats, 'std'):
    return ds_or_stats.mean, ds_or_stats.std, getattr(ds_or_stats, 'zca', None)
  if isinstance(ds_or_stats, (tuple, list)) and len(ds_or_stats) in (2, 3):
    mean, std, *rest = ds_or_stats
    return mean, std, (rest[0] if rest else None)
  raise TypeError('denormalize expects a Dataset or a (mean, std[, zca]) tuple, '
                  f'got {type(ds_or_stats).__name__}')


def denormalize(ds_or_stats, x) -> np.ndarray:
  """Maps preprocessed images back to [0, 1]-ish pixels, for PNGs.

  Undoes the ZCA with its inverse, then ``* std + mean``. Values are not clipped.
  For the krr ZCA, whose per-image centring and scaling cannot be undone, the
  inverted image (unit L2 norm) is rescaled by sqrt(D) to a per-pixel RMS of 1,
  i.e. about one standard deviation of normalised pixels: a display choice.

  Args:
    ds_or_stats: a ``Dataset`` (or anything with ``mean``, ``std`` and optionally
      ``zca`` attributes), or a tuple (mean, std) or (mean, std, zca).
    x: float [..., H, W, C] images in the preprocessed space.

  Returns:
    float32 numpy images of the same shape.
  """
  mean, std, zca = _stats_of(ds_or_stats)
  x = np.asarray(x, np.float32)
  if zca is not None:
    x = zca_invert(zca, x)
    if zca.per_image_normalize:
      x = x * np.sqrt(float(np.prod(zca.shape)))
  return (x * np.asarray(std, np.float32) + np.asarray(mean, np.float32)).astype(np.float32)
