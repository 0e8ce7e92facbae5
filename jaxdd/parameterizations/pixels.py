"""The plain parameterization: synthetic images stored as pixels.

``ipc`` images per class, class-major (class 0 first), initialised from real images of
their class (DM, DSA, MTT) or from standard-normal noise (DC), with hard labels (fixed
one-hot rows, not stored) or learnable soft labels initialised to the one-hot rows, or
to the objective's label initialisation when it gives one (DATM's expert logits).
"""

import jax
import jax.numpy as jnp

from jaxdd.errors import ConfigError
from jaxdd.interfaces import Budget, Parameterization, SynData

INITS = ('real', 'noise')


def make_pixels(*, num_classes: int, ipc: int, image_shape, init: str = 'real',
                learn_labels: bool = False) -> Parameterization:
  """Builds the pixel parameterization.

  Args:
    num_classes: K.
    ipc: images per class; the set holds ``K * ipc`` images.
    image_shape: (H, W, C).
    init: 'real' (random real images of each class) or 'noise' (N(0, 1) pixels).
    learn_labels: store the labels as a learnable [K*ipc, K] array.

  Returns:
    A ``Parameterization``; ``params = {'images': [K*ipc, H, W, C]}`` plus
    ``'labels'`` when learned.
  """
  if init not in INITS:
    raise ConfigError(f'parameterization.init must be one of {", ".join(INITS)}, '
                      f'got {init!r}')
  if ipc <= 0:
    raise ConfigError(f'ipc must be a positive integer, got {ipc}')
  h, w, c = image_shape
  n = num_classes * ipc
  hard = jax.nn.one_hot(jnp.repeat(jnp.arange(num_classes), ipc), num_classes)

  def init_fn(key, sample_real):
    label_init = hard
    if init == 'real':
      images, labels = sample_real(ipc)
      images = jnp.asarray(images, jnp.float32)
      if jnp.ndim(labels) == 2:   # the objective's label init, e.g. DATM's expert logits
        label_init = jnp.asarray(labels, jnp.float32)
    else:
      images = jax.random.normal(key, (n, h, w, c), jnp.float32)
    params = {'images': images}
    if learn_labels:
      params['labels'] = label_init
    return params

  def decode(params):
    labels = params['labels'] if learn_labels else hard
    return SynData(params['images'], labels, {})

  def budget(params):
    detail = {'images': int(params['images'].size)}
    if learn_labels:
      detail['labels'] = int(params['labels'].size)
    return Budget(sum(detail.values()), detail['images'] / (num_classes * h * w * c),
                  detail)

  return Parameterization(init_fn, decode, budget)
