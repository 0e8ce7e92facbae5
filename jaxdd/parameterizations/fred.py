"""FreD: synthetic images stored as a few masked DCT coefficients (docs/methods.md §2 FreD).

Shin, Shin & Moon, "Frequency Domain-based Dataset Distillation", NeurIPS 2023:
``image = IDCT₂(M ⊙ F)``. Per class, a fixed binary mask M keeps the ``msz``
frequency positions with the largest explained-variance ratio over that class's real
initialisation images; only the coefficients F at those positions are stored and
learned. Spending ``msz`` floats per channel instead of H·W buys
``n = ipc·H·W / msz`` instances per class for the budget of ``ipc`` images (FreD #1;
IPC 1 with msz 64 on 32×32 gives 16).

Layout: ``params = {'coeffs': float32 [K, n, msz, C], 'mask_index': float32 [K, msz]}``,
class-major; ``mask_index[c]`` holds the flat positions ``h·W + w`` of class c's mask in
increasing order, and ``coeffs[c, i, j]`` is the coefficient of instance i at position
``mask_index[c, j]``, shared by all channels.

Why the mask sits in ``params`` as float32: the mask depends on the real data, which
only ``init`` sees, so it must travel with the params. The loop optimises every leaf of
``params`` (all but 'labels' go to the images optimizer) and ``jax.value_and_grad``
refuses integer leaves, so an int32 mask would break the step. Stored as float32 and
cast to int32 in ``decode``, its gradient is exactly zero (an integer cast has none),
so SGD with momentum and Adam both leave it bit-for-bit unchanged; float32 represents
every index below 2^24 exactly.
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import dct
from jaxdd.config_fields import boolean, one_of, read_section
from jaxdd.errors import ConfigError, DataError, is_int
from jaxdd.interfaces import Budget, Parameterization, SynData
from jaxdd.parameterizations.pixels import hard_labels

DCT_NORMS = dct.NORMS


class FredConfig(NamedTuple):
  """The fields of ``config.parameterization`` for 'fred'.

  Attributes:
    msz: frequency positions kept per class (the authors' ``msz_per_channel``); must
      divide ``ipc·H·W`` and lie in 1..H·W (``check_msz``, which needs the ipc and the
      image shape, so it is checked by ``make_fred``).
    dct_norm: 'ortho' or None, the authors' unnormalised DCT (``jaxdd.dct``: it needs a
      learning rate larger by the squared gain, about 4·H·W). The mask is ranked on the
      coefficients of this transform, as the authors do; with None the first row and
      column of frequencies weigh 2x (the DC 4x) more than their energy. The text
      'none' (a command line's spelling of None) is read as None.
    init: 'real', the only one: FreD initialises from real images.
    learn_labels: store the labels as a learnable [K·n, K] array initialised one-hot;
      FreD itself uses hard labels.
  """
  msz: int = 64
  dct_norm: str | None = 'ortho'
  init: str = 'real'
  learn_labels: bool = False


def _is_dct_norm(v) -> bool:
  return v in DCT_NORMS or (isinstance(v, str) and v.lower() == 'none')


CHECKS = {'dct_norm': (_is_dct_norm, "'ortho' or None"), 'init': one_of(('real',)),
          'learn_labels': boolean()}
SHARED_FIELDS = ('name',)   # the registry's


def parse(section: Mapping | None) -> FredConfig:
  """``FredConfig`` from ``config.parameterization``, checked; 'none' read as None."""
  cfg = read_section(section, FredConfig, 'parameterization', CHECKS,
                     shared=SHARED_FIELDS)
  # --config.parameterization.dct_norm=none on a command line arrives as a string.
  if isinstance(cfg.dct_norm, str) and cfg.dct_norm.lower() == 'none':
    cfg = cfg._replace(dct_norm=None)
  return cfg


def valid_msz(ipc: int, image_shape) -> list[int]:
  """The mask sizes FreD accepts: 1..H·W and dividing ``ipc·H·W`` (n is an integer)."""
  h, w, _ = image_shape
  return [m for m in range(1, h * w + 1) if (ipc * h * w) % m == 0]


def check_msz(msz, ipc: int, image_shape) -> None:
  """Raises ConfigError naming ``parameterization.msz`` and the accepted values."""
  h, w, _ = image_shape
  accepted = valid_msz(ipc, image_shape)
  if not is_int(msz) or msz not in accepted:
    raise ConfigError(
        f'parameterization.msz must be an integer in 1..{h * w} (H·W) that divides '
        f'ipc·H·W = {ipc}·{h}·{w} = {ipc * h * w}, so that ipc·H·W/msz instances per '
        f'class is an integer; got {msz!r}; accepted: {", ".join(map(str, accepted))}')


def explained_variance_ratio(freq: np.ndarray) -> np.ndarray:
  """EVR of every frequency position over one class's instances.

  Args:
    freq: [n, H, W, C] DCT coefficients of the class's n instances.

  Returns:
    float64 [H·W]: ``var_i / Σ_j var_j`` of the channel-averaged coefficients (the
    diagonal of their covariance over its trace, as the authors' ``init_mask``). All
    zeros when the class has no variance (n = 1 or identical images): every position
    then ties.
  """
  f = np.asarray(freq, np.float64).mean(axis=-1).reshape(freq.shape[0], -1)
  f = f - f.mean(axis=0)
  var = (f ** 2).sum(axis=0) / max(f.shape[0] - 1, 1)   # torch.cov's unbiased scale
  total = var.sum()
  return var / total if total > 0 else np.zeros_like(var)


def top_positions(evr: np.ndarray, msz: int) -> np.ndarray:
  """The ``msz`` flat positions of largest EVR, returned in increasing order.

  Ties are broken by the lowest flat index (a stable sort), so the mask is a
  deterministic function of the data; torch.topk in the authors' code leaves ties
  unspecified.
  """
  order = np.argsort(-evr, kind='stable')
  return np.sort(order[:msz])


def class_masks(freq: np.ndarray, msz: int) -> np.ndarray:
  """int64 [K, msz]: ``top_positions`` of every class of ``freq`` [K, n, H, W, C]."""
  return np.stack([top_positions(explained_variance_ratio(f), msz) for f in freq])


def instances_per_class(ipc: int, msz: int, image_shape) -> int:
  """n = ipc·H·W / msz, the instances per class that ``ipc`` images buy."""
  h, w, _ = image_shape
  return ipc * h * w // msz


def init_fred(cfg: FredConfig, num_classes: int, ipc: int, image_shape, key,
              sample_real) -> dict:
  """coeffs and mask_index (module docstring) of n real instances per class, plus
  'labels' (one-hot) when learned. The init is real images, chosen by sample_real's
  own seed: ``key`` is unused."""
  del key
  h, w, c = image_shape
  n = instances_per_class(ipc, cfg.msz, image_shape)
  try:
    images, _ = sample_real(n)
  except DataError as e:
    raise DataError(f'{e} (FreD with ipc {ipc} and msz {cfg.msz} initialises '
                    f'ipc·H·W/msz = {n} instances per class from real images)') from e
  freq = dct.dct2_host(np.asarray(images).reshape(num_classes, n, h, w, c), cfg.dct_norm)
  mask = class_masks(freq, cfg.msz)                                    # [K, msz]
  flat = freq.reshape(num_classes, n, h * w, c)
  coeffs = np.take_along_axis(flat, mask[:, None, :, None], axis=2)    # [K, n, msz, C]
  params = {'coeffs': jnp.asarray(coeffs, jnp.float32),
            'mask_index': jnp.asarray(mask, jnp.float32)}
  if cfg.learn_labels:
    params['labels'] = hard_labels(num_classes, n)
  return params


def scatter(coeffs, index, image_shape):
  """[n, msz, C] coefficients at flat positions ``index`` -> a dense [n, H·W, C]."""
  h, w, c = image_shape
  return jnp.zeros((coeffs.shape[0], h * w, c), coeffs.dtype).at[:, index].set(coeffs)


def decode_fred(cfg: FredConfig, image_shape, hard, params) -> SynData:
  """``IDCT₂(M ⊙ F)`` of every instance, class-major, with the learned or ``hard``
  labels."""
  h, w, c = image_shape
  num_classes, n = params['coeffs'].shape[:2]
  # The cast has no gradient: the mask stays fixed under any optimizer (module doc).
  index = params['mask_index'].astype(jnp.int32)
  freq = jax.vmap(lambda f, i: scatter(f, i, image_shape))(params['coeffs'], index)
  images = dct.idct2(freq.reshape(num_classes * n, h, w, c), cfg.dct_norm)
  labels = params['labels'] if cfg.learn_labels else hard
  return SynData(images, labels, {})


def fred_budget(cfg: FredConfig, num_classes: int, image_shape, params) -> Budget:
  """Stored, learned floats; the fixed mask is reported but, as in the paper, not counted.

  ``detail['mask_indices']`` (K·msz integer positions) is the mask's cost, outside
  ``floats``: FreD's budget tables count only the coefficients.
  """
  h, w, c = image_shape
  detail = {'coeffs': int(params['coeffs'].size)}
  if cfg.learn_labels:
    detail['labels'] = int(params['labels'].size)
  floats = sum(detail.values())
  detail['mask_indices'] = int(params['mask_index'].size)
  return Budget(floats, detail['coeffs'] / (num_classes * h * w * c), detail)


def make_fred(*, num_classes: int, ipc: int, image_shape, **fields) -> Parameterization:
  """Builds the FreD parameterization.

  Args:
    num_classes: K.
    ipc: the budget in images per class; the set decodes to ``K·n`` images with
      ``n = ipc·H·W / msz``.
    image_shape: (H, W, C).
    **fields: ``FredConfig``'s (``msz``, ``dct_norm``, ``init``, ``learn_labels``).

  Returns:
    A ``Parameterization`` (module docstring for the params layout).

  Raises:
    ConfigError: a bad ``ipc``, ``msz`` or ``dct_norm``, before anything is compiled.
  """
  if not is_int(ipc) or ipc <= 0:
    raise ConfigError(f'ipc must be a positive integer, got {ipc!r}')
  cfg = parse(fields)
  check_msz(cfg.msz, ipc, image_shape)
  image_shape = tuple(image_shape)
  hard = hard_labels(num_classes, instances_per_class(ipc, cfg.msz, image_shape))
  return Parameterization(
      functools.partial(init_fred, cfg, num_classes, ipc, image_shape),
      functools.partial(decode_fred, cfg, image_shape, hard),
      functools.partial(fred_budget, cfg, num_classes, image_shape))


def from_config(config, num_classes: int, image_shape, ds=None) -> Parameterization:
  """The registry's entry: ``make_fred`` of ``config.parameterization`` and ``ipc``."""
  del ds
  cfg = parse(config.parameterization)
  return make_fred(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                   **cfg._asdict())
