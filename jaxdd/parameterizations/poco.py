"""PoCO: which class sits next to which on a PoDD poster (docs/methods.md §2 PoDD, paper §4.2).

Neighbouring classes share poster pixels, so PoDD places semantically close classes next
to each other. PoCO is greedy: the class grid is filled in anti-diagonal order, and each
cell takes the unused class with the smallest summed distance ``1 − cos(e_m, e_c)`` to
its already placed 4-neighbours (paper Eq. in §4.2, Algorithm 2). Cell (0, 0) takes
class 0, as the paper's ``O[0,0] ← C[0]`` and the authors' code (``src/PoCO.py``) do.

The authors embed class *names* with CLIP ViT-B/32's text encoder (the flattened, padded
``last_hidden_state``). ``poco_order`` takes any [K, D] embeddings, from three sources:
class-name text embeddings of all-MiniLM-L6-v2, run offline in JAX
(``jaxdd.text_encoder.class_name_embeddings``; not CLIP, so the order can differ from
the authors'), ``class_mean_embeddings`` of real images (raw pixels or a network's
features), or an array computed elsewhere (e.g. CLIP text embeddings). In a config:
``parameterization.class_order`` = 'poco_text', 'poco_pixels' or an explicit grid
(``resolve_class_order``).

Host-side NumPy on purpose: the placement runs once, before distillation, over at most
a few hundred cells, and its choices are discrete.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.errors import ConfigError, DataError
from jaxdd import text_encoder


def cosine_distances(embeddings) -> np.ndarray:
  """float64 [K, K]: ``1 − e_i·e_j / (max(‖e_i‖, ε)·max(‖e_j‖, ε))`` with ε = 1e-6.

  ε is torch's ``CosineSimilarity(eps=1e-6)``, which the authors use; it only matters
  for an all-zero embedding.
  """
  e = np.asarray(embeddings, np.float64)
  norms = np.maximum(np.linalg.norm(e, axis=1), 1e-6)
  return 1.0 - (e @ e.T) / (norms[:, None] * norms[None, :])


def anti_diagonal_order(rows: int, cols: int) -> list[tuple[int, int]]:
  """The cells of a rows×cols grid in the authors' ``_diagonal_order``.

  Anti-diagonals r + c = 0, 1, ... in turn, each from its bottom-left cell (largest row)
  to its top-right one. The paper calls it a "Zigzag" traversal; the code does not
  alternate direction between diagonals, and neither does this.
  """
  cells = [(r, c) for r in range(rows) for c in range(cols)]
  return sorted(cells, key=lambda rc: (rc[0] + rc[1], -rc[0]))


def poco_order(embeddings, rows: int, cols: int) -> np.ndarray:
  """PoCO's greedy class grid (paper §4.2, Algorithm 2; the authors' ``PoCO.py``).

  Args:
    embeddings: [K, D], one embedding per class, K = rows·cols.
    rows: grid rows (the authors' ``poster_class_num_y``).
    cols: grid columns (``poster_class_num_x``).

  Returns:
    int32 [rows, cols]: ``order[r, c]`` is the class at cell (r, c), the ``class_order``
    of ``jaxdd.parameterizations.poster.make_poster``.

  Each cell in ``anti_diagonal_order`` takes ``argmin_{c unused} Σ_{m ∈ placed
  4-neighbours} (1 − cos(e_m, e_c))``, ties to the lowest class index (the authors'
  ``idxmin`` over the remaining classes in index order). In this order the placed
  neighbours are the ones above and to the left, the two of the paper's formula. A cell
  without a placed neighbour, only (0, 0), takes the lowest unused class.

  Raises:
    ConfigError: the grid does not hold exactly K cells.
  """
  e = np.asarray(embeddings)
  if e.ndim != 2:
    raise ConfigError(f'PoCO embeddings must be [K, D], got shape {e.shape}')
  k = e.shape[0]
  if rows * cols != k or rows < 1 or cols < 1:
    raise ConfigError(f'parameterization.grid (rows, cols) must have rows·cols = K = {k} '
                      f'(one cell per embedding), got ({rows}, {cols})')
  dist = cosine_distances(e)
  order = np.full((rows, cols), -1, np.int32)
  unused = np.ones(k, bool)
  for r, c in anti_diagonal_order(rows, cols):
    neighbours = [order[i, j] for i, j in ((r - 1, c), (r, c - 1), (r + 1, c), (r, c + 1))
                  if 0 <= i < rows and 0 <= j < cols and order[i, j] >= 0]
    cost = dist[:, neighbours].sum(axis=1) if neighbours else np.zeros(k)
    cost = np.where(unused, cost, np.inf)
    choice = int(np.argmin(cost))       # argmin returns the first minimum: lowest index
    order[r, c] = choice
    unused[choice] = False
  return order


def class_mean_embeddings(x, y, num_classes: int, feature_fn=None) -> jnp.ndarray:
  """[K, D]: the mean feature of each class's real images, an image-based PoCO input.

  Args:
    x: [N, H, W, C] real images (a few hundred per class suffice).
    y: int [N] labels in 0..K−1.
    num_classes: K.
    feature_fn: ``[n, H, W, C] -> [n, D]``, e.g. a random ConvNet's embedding
      (``lambda v: apply_model(model, variables, v)``); default the flattened pixels.

  Returns:
    float32 [K, D]: ``mean_{i: y_i = k} f(x_i)``.

  Raises:
    DataError: a class has no image.
  """
  counts = np.bincount(np.asarray(y), minlength=num_classes)
  if counts.shape[0] != num_classes or np.any(counts == 0):
    empty = [i for i in range(num_classes) if i >= counts.shape[0] or counts[i] == 0]
    raise DataError(f'PoCO class means need every class 0..{num_classes - 1} among the '
                    f'images; empty or out of range: {empty or "labels ≥ K"}')
  x = jnp.asarray(x, jnp.float32)
  feats = feature_fn(x) if feature_fn is not None else x.reshape(x.shape[0], -1)
  sums = jax.ops.segment_sum(feats, jnp.asarray(y), num_segments=num_classes)
  return sums / jnp.asarray(counts, jnp.float32)[:, None]


CLASS_ORDER_SOURCES = ('poco_text', 'poco_pixels')


def resolve_class_order(spec, ds, grid, *, template: str = 'a photo of a {}',
                        max_per_class: int = 500):
  """A config's ``parameterization.class_order`` as an int [rows, cols] grid, or None.

  Args:
    spec: None / '' / empty (row-major order), an explicit grid (returned as is),
      'poco_text' (PoCO on the class-name embeddings of ``jaxdd.text_encoder``, the
      paper's source with MiniLM in place of CLIP) or 'poco_pixels' (PoCO on the mean
      of up to ``max_per_class`` training images of each class).
    ds: the ``jaxdd.data.Dataset`` (its ``class_names``, ``x_train``, ``y_train``).
    grid: (rows, cols) of the class grid.

  Raises:
    ConfigError: an unknown string, naming the accepted values.
  """
  if spec is None or len(spec) == 0:   # None, '' or an empty grid: row-major
    return None
  if not isinstance(spec, str):
    return spec
  if spec not in CLASS_ORDER_SOURCES:
    raise ConfigError(f'parameterization.class_order must be one of '
                      f'{", ".join(CLASS_ORDER_SOURCES)} or a (rows, cols) grid of class '
                      f'ids, got {spec!r}')
  rows, cols = grid
  if spec == 'poco_text':
    emb = text_encoder.class_name_embeddings(list(ds.class_names), template=template)
  else:
    y = np.asarray(ds.y_train)
    keep = np.concatenate([np.flatnonzero(y == k)[:max_per_class]
                           for k in range(ds.num_classes)])
    emb = class_mean_embeddings(np.asarray(ds.x_train)[keep], y[keep], ds.num_classes)
  return poco_order(np.asarray(emb), rows, cols)
