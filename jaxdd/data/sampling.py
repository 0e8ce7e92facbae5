"""Class-balanced sampling of real images: on device inside jit, and on the host for init.

The train set lives on the device; every distillation step draws ``per_class`` indices
of each class with ``sample_class_balanced`` from a padded per-class index table built
once by ``build_class_index``, so no host loader runs in the hot loop.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.errors import ConfigError, DataError, is_int


class ClassIndex(NamedTuple):
  """Per-class train indices, padded to a rectangle (a pytree: device_put it once).

  Attributes:
    table: int32 [C, max_count]; row c lists the indices of class c in ``y_train``,
      cycled to fill the row, so padding entries are repeats of real indices.
    counts: int32 [C], the number of distinct (valid) entries of each row.
  """
  table: jnp.ndarray
  counts: jnp.ndarray


def build_class_index(labels: np.ndarray, num_classes: int) -> ClassIndex:
  """Builds the ``ClassIndex`` of integer labels [N], on the host.

  Raises:
    DataError: a class has no example (it could not be sampled).
  """
  labels = np.asarray(labels)
  rows = [np.flatnonzero(labels == c) for c in range(num_classes)]
  counts = np.array([len(r) for r in rows], np.int64)
  if (counts == 0).any():
    raise DataError(f'class(es) {np.flatnonzero(counts == 0).tolist()[:10]} have no '
                    'examples to sample from')
  max_count = int(counts.max())
  # np.resize repeats a row cyclically: padding is always a valid index of the class.
  table = np.stack([np.resize(r, max_count) for r in rows])
  return ClassIndex(jnp.asarray(table, jnp.int32), jnp.asarray(counts, jnp.int32))


def sample_class_balanced(key, index: ClassIndex, per_class: int) -> jnp.ndarray:
  """Draws ``per_class`` train indices of every class; jit-able with ``per_class`` static.

  Classes with at least ``per_class`` examples are sampled without replacement (the
  top-k of uniform scores over the valid entries of the row), smaller classes with
  replacement.

  Args:
    key: a JAX PRNG key.
    index: the ``ClassIndex`` of the train labels.
    per_class: n, a Python int.

  Returns:
    int32 [C, per_class] indices into the train set; row c holds class c.
  """
  num_classes, max_count = index.table.shape
  perm_key, repl_key = jax.random.split(key)
  counts = index.counts[:, None]
  # With replacement: a uniform position among the valid entries of each row.
  pos = jax.random.randint(repl_key, (num_classes, per_class), 0, counts)
  if per_class <= max_count:
    valid = jnp.arange(max_count)[None, :] < counts
    scores = jnp.where(valid, jax.random.uniform(perm_key, (num_classes, max_count)), -1.0)
    _, distinct = jax.lax.top_k(scores, per_class)
    pos = jnp.where(counts >= per_class, distinct, pos)
  return jnp.take_along_axis(index.table, pos, axis=1).astype(jnp.int32)


def _host_rng(seed_or_key) -> np.random.Generator:
  """A numpy Generator seeded by an int or by the bits of a JAX key."""
  if isinstance(seed_or_key, (int, np.integer)):
    return np.random.default_rng(int(seed_or_key))
  key = seed_or_key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


def _check_per_class(per_class) -> None:
  if not is_int(per_class) or per_class <= 0:
    raise ConfigError(f'images per class must be a positive integer, got {per_class!r}')


def select_real_init(seed_or_key, x, y, num_classes: int, per_class: int, *,
                     name: str = 'train set'):
  """Random real images of every class, as DC/DM initialise the synthetic set.

  Host-side and deterministic in ``seed_or_key``; without replacement within a class.

  Args:
    seed_or_key: an int seed or a JAX PRNG key.
    x: [N, H, W, C] images.
    y: [N] integer labels.
    num_classes: C.
    per_class: images per class.
    name: the data set's name, for error messages.

  Returns:
    (images [C * per_class, H, W, C], labels int32 [C * per_class]), class-major
    (all of class 0 first).

  Raises:
    ConfigError: ``per_class`` is not a positive integer.
    DataError: a class has fewer than ``per_class`` images.
  """
  _check_per_class(per_class)
  y = np.asarray(y)
  rng = _host_rng(seed_or_key)
  picks = []
  for c in range(num_classes):
    idx = np.flatnonzero(y == c)
    if len(idx) < per_class:
      raise DataError(f'dataset {name!r}: class {c} has {len(idx)} images, fewer than the '
                      f'{per_class} per class asked for')
    picks.append(rng.choice(idx, per_class, replace=False))
  picks = np.concatenate(picks)
  labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
  return np.asarray(x[picks]), labels


def select_real_init_filtered(seed_or_key, x, y, num_classes: int, per_class: int,
                              keep_fn, *, chunk: int = 256, name: str = 'train set'):
  """Like ``select_real_init``, but only images ``keep_fn`` accepts, with its labels.

  DATM initialises from real images the experts classify correctly, with the experts'
  logits as the initial soft labels. Candidates of each class are visited in a random
  order (deterministic in ``seed_or_key``), ``chunk`` at a time (a fixed shape, so a
  jitted ``keep_fn`` compiles once), until ``per_class`` are accepted.

  Args:
    seed_or_key: an int seed or a JAX PRNG key.
    x: [N, H, W, C] images.
    y: [N] integer labels.
    num_classes: K.
    per_class: images per class.
    keep_fn: (images [chunk, H, W, C], labels int [chunk]) -> (keep bool [chunk],
      label_init float [chunk, K]).
    chunk: candidates per call of ``keep_fn``.
    name: the data set's name, for error messages.

  Returns:
    (images [K * per_class, H, W, C], label_init float32 [K * per_class, K]),
    class-major.

  Raises:
    DataError: a class has fewer than ``per_class`` accepted images.
  """
  _check_per_class(per_class)
  y = np.asarray(y)
  rng = _host_rng(seed_or_key)
  images, label_init = [], []
  for c in range(num_classes):
    order = rng.permutation(np.flatnonzero(y == c))
    accepted, labels_c = [], []
    for start in range(0, len(order), chunk):
      idx = order[start:start + chunk]
      padded = np.resize(idx, chunk)   # repeats the chunk's own indices to a fixed shape
      keep, init = jax.device_get(keep_fn(jnp.asarray(x[padded]), jnp.asarray(y[padded])))
      keep = np.asarray(keep)[:len(idx)]
      accepted.extend(idx[keep].tolist())
      labels_c.extend(np.asarray(init)[:len(idx)][keep])
      if len(accepted) >= per_class:
        break
    if len(accepted) < per_class:
      raise DataError(f'dataset {name!r}: class {c} has {len(accepted)} images the '
                      f'objective accepts for initialisation (e.g. classified correctly '
                      f'by the experts), fewer than the {per_class} per class asked for')
    images.append(np.asarray(x[np.asarray(accepted[:per_class])]))
    label_init.append(np.stack(labels_c[:per_class]).astype(np.float32))
  return np.concatenate(images), np.concatenate(label_init)
