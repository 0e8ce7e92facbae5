"""The plain parameterization: synthetic images stored as pixels.

``ipc`` images per class, class-major (class 0 first), initialised from real images of
their class (DM, DSA, MTT) or from standard-normal noise (DC), with hard labels (fixed
one-hot rows, not stored) or learnable soft labels initialised to the one-hot rows, or
to the objective's label initialisation when it gives one (DATM's expert logits).
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdd.config_fields import boolean, one_of, read_section
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Budget, Parameterization, SynData

INITS = ('real', 'noise')


class PixelsConfig(NamedTuple):
  """The fields of ``config.parameterization`` for 'pixels'.

  Attributes:
    init: 'real' (random real images of each class) or 'noise' (N(0, 1) pixels).
    learn_labels: store the labels as a learnable [K*ipc, K] array.
  """
  init: str = 'real'
  learn_labels: bool = False


CHECKS = {'init': one_of(INITS), 'learn_labels': boolean()}
SHARED_FIELDS = ('name',)   # the registry's


def parse(section: Mapping | None) -> PixelsConfig:
  """``PixelsConfig`` from ``config.parameterization``, checked."""
  return read_section(section, PixelsConfig, 'parameterization', CHECKS,
                      shared=SHARED_FIELDS)


def hard_labels(num_classes: int, per_class: int) -> jax.Array:
  """float32 [K·per_class, K]: one-hot rows of the class-major order."""
  return jax.nn.one_hot(jnp.repeat(jnp.arange(num_classes), per_class), num_classes)


def init_pixels(cfg: PixelsConfig, num_classes: int, ipc: int, image_shape, key,
                sample_real) -> dict:
  """``{'images': [K*ipc, H, W, C]}`` (real images or noise from ``key``) plus
  ``'labels'`` when learned: one-hot, or the objective's label init (2-D labels)."""
  label_init = hard_labels(num_classes, ipc)
  if cfg.init == 'real':
    images, labels = sample_real(ipc)
    images = jnp.asarray(images, jnp.float32)
    if jnp.ndim(labels) == 2:   # the objective's label init, e.g. DATM's expert logits
      label_init = jnp.asarray(labels, jnp.float32)
  else:
    images = jax.random.normal(key, (num_classes * ipc,) + tuple(image_shape),
                               jnp.float32)
  params = {'images': images}
  if cfg.learn_labels:
    params['labels'] = label_init
  return params


def decode_pixels(cfg: PixelsConfig, hard, params) -> SynData:
  """The stored images, with the learned labels or the fixed ``hard`` rows."""
  labels = params['labels'] if cfg.learn_labels else hard
  return SynData(params['images'], labels, {})


def pixels_budget(cfg: PixelsConfig, num_classes: int, image_shape, params) -> Budget:
  """Stored floats: the images (and the learned labels)."""
  h, w, c = image_shape
  detail = {'images': int(params['images'].size)}
  if cfg.learn_labels:
    detail['labels'] = int(params['labels'].size)
  return Budget(sum(detail.values()), detail['images'] / (num_classes * h * w * c),
                detail)


def make_pixels(*, num_classes: int, ipc: int, image_shape,
                **fields) -> Parameterization:
  """Builds the pixel parameterization.

  Args:
    num_classes: K.
    ipc: images per class; the set holds ``K * ipc`` images.
    image_shape: (H, W, C).
    **fields: ``PixelsConfig``'s (``init``, ``learn_labels``).

  Returns:
    A ``Parameterization``; ``params = {'images': [K*ipc, H, W, C]}`` plus
    ``'labels'`` when learned.

  Raises:
    ConfigError: an unknown field, a bad value or ``ipc``, before anything compiles.
  """
  cfg = read_section(fields, PixelsConfig, 'parameterization', CHECKS)
  if ipc <= 0:
    raise ConfigError(f'ipc must be a positive integer, got {ipc}')
  image_shape = tuple(image_shape)
  return Parameterization(
      functools.partial(init_pixels, cfg, num_classes, ipc, image_shape),
      functools.partial(decode_pixels, cfg, hard_labels(num_classes, ipc)),
      functools.partial(pixels_budget, cfg, num_classes, image_shape))


def from_config(config, num_classes: int, image_shape, ds=None) -> Parameterization:
  """The registry's entry: ``make_pixels`` of ``config.parameterization`` and ``ipc``."""
  del ds
  cfg = parse(config.parameterization)
  return make_pixels(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                     **cfg._asdict())
