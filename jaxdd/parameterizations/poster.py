"""PoDD: the whole synthetic set is one poster cut into overlapping patches (docs/methods.md §2).

Shul, Horwitz & Hoshen, "Distilling Datasets Into Less Than One Image", 2024. One float32
poster [Hp, Wp, C] is stored; decode extracts n_x·n_y overlapping H×W patches at
``round(linspace(0, Wp−W, n_x)) × round(linspace(0, Hp−H, n_y))`` (§4.1), so neighbouring
classes share pixels and the budget ``Hp·Wp / (K·H·W)`` images per class can be below 1.
Gradients of overlapping patches add up on shared pixels (a gather's transpose).

Geometry (``poster_geometry``, module ``jaxdd.parameterizations.poster_geometry``):
  * class grid (rows, cols): the most nearly square rows·cols = K, rows ≤ cols: the
    paper's 2×5 (CIFAR-10), 10×10 (CIFAR-100), 10×20 (CUB-200, Tiny-ImageNet).
    ``class_order[r, c]`` is the class at cell (r, c) (``poco.poco_order`` for PoCO's).
  * poster: B = ipc·K·H·W pixels with the grid's aspect, ``Hp = ⌊√(B·rows/cols)⌋,
    Wp = ⌊B/Hp⌋``: the authors' 60×153 for CIFAR-10 at 0.9. Their other posters were
    picked by hand (CIFAR-100 303×303; this rule: 303×304): ``poster_shape`` sets one.
  * patches: the paper fixes them per data set (§5.1). Default: its CIFAR-10 density,
    p = round(PATCH_DENSITY·Hp·Wp/(H·W)), split by ``split_patches`` with the poster's
    aspect, which turns the paper's totals 96, 400, 1800, 800 into its 16×6, 20×20,
    60×30, 40×20.
  * class tiles at ``round(linspace(0, Hp−th, rows)) × round(linspace(0, Wp−tw, cols))``,
    of the image size (the authors' ``class_area`` in all README runs), enlarged to
    ⌈Hp/rows⌉×⌈Wp/cols⌉ when image-size tiles would leave gaps (above 1 IPC).

Init: 'tiles' (authors' code, ``src/base.py``; ``gaussian_tiles`` + ``blend_tiles``),
'noise' (N(0, 1), the paper's Algorithm 1), 'real' (a real image per class as its tile)
or 'real_patches' (jaxdd's, not the paper's: a real image of its majority class at every
patch's position, blended with the same fades, so that each overlapping patch starts
close to a real image instead of straddling two class tiles).

PoDDL labels (§4.3):
  * fixed: 'majority' (the paper, the default): the class order matrix upsampled to the
    poster (nearest neighbour), and each patch's majority class one-hot, ties shared
    equally. 'softmax' (the authors' code): a softmax of the patch's pixel counts in each
    class tile, in practice the majority class. 'shares': those counts normalised.
  * learned: a map [h, w, K] of at most ``label_cells`` cells (default K·max(1,
    round(ipc)), the authors' ``--comp_ipc``), one-hot per class region, clamped ≥ 0
    after every update (``poster_project``); a patch's label is the map pooled over the
    patch's down-scaled window, L1-normalised. 'area' (the paper's nearest-upsample and
    average, the default) or 'crop' (authors' ``get_labels_from_array``: a window of
    whole cells, so a patch straddling two class regions often gets one class's label)
    pooling: ``label_pool_weights``.
    Map shape: ``label_map_shape``. The authors' rule excludes h·w = label_cells and can
    leave a class row without a cell (CIFAR-10 0.9: a 1×6 map for 2×5 classes); this one
    gives 2×5, 10×10 and 10×20 on their runs.

The decoded set is *not* class-major with equal counts per class: objectives that read
classes from the order (DM, DC) need soft-label-aware versions. The authors sample
``distill_batch_size`` patches per inner step; decode returns all, the objective samples.
"""
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import sharding
from jaxdd.config_fields import boolean, one_of, read_section
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Budget, Parameterization, SynData
from jaxdd.parameterizations import poco
from jaxdd.parameterizations.poster_geometry import PosterGeometry
from jaxdd.parameterizations.poster_geometry import crop_starts
from jaxdd.parameterizations.poster_geometry import default_grid
from jaxdd.parameterizations.poster_geometry import poster_geometry


INITS = ('tiles', 'noise', 'real', 'real_patches')
FIXED_LABELS = ('majority', 'softmax', 'shares')
LABEL_POOLS = ('crop', 'area')


class PosterConfig(NamedTuple):
  """The fields of ``config.parameterization`` for 'poster' (module docstring's rules).

  The geometry's fields (grid, patches, class_order, poster_shape, label_cells) are
  checked by ``poster_geometry``, which needs K, the image shape and the ipc; None or
  an empty value (``patches=()``, ``label_cells=0``) means the default.

  Attributes:
    grid: (rows, cols) of the class grid, rows·cols = K; default ``default_grid(K)``.
    patches: (n_x, n_y) patches along x and y; default ``default_patches``.
    learn_labels: PoDDL learned labels (a [h, w, K] map under the labels optimizer);
      otherwise fixed pixel-share labels.
    label_cells: at most this many label-map cells; default K·max(1, round(ipc)).
    class_order: int [rows, cols], the class at each grid cell (e.g. from
      ``poco.poco_order``), or 'poco_text' / 'poco_pixels' (PoCO on this data set,
      ``poco.resolve_class_order``, in ``from_config``); default row-major 0..K−1.
    poster_shape: (Hp, Wp) instead of the size derived from ``ipc``.
    init: 'tiles' (authors' code), 'noise' (paper's Algorithm 1), 'real' (a real
      image per class tile) or 'real_patches' (a real image per patch; module doc).
    fixed_labels: 'majority' (paper), 'softmax' (authors' code) or 'shares'.
    label_pool: 'area' (paper's text) or 'crop' (authors' code), for learned labels.
  """
  grid: Any = None
  patches: Any = None
  learn_labels: bool = False
  label_cells: Any = None
  class_order: Any = None
  poster_shape: Any = None
  init: str = 'tiles'
  fixed_labels: str = 'majority'
  label_pool: str = 'area'


CHECKS = {'init': one_of(INITS), 'fixed_labels': one_of(FIXED_LABELS),
          'label_pool': one_of(LABEL_POOLS), 'learn_labels': boolean()}
SHARED_FIELDS = ('name',)   # the registry's


def parse(section: Mapping | None) -> PosterConfig:
  """``PosterConfig`` from ``config.parameterization``, checked (but its geometry)."""
  return read_section(section, PosterConfig, 'parameterization', CHECKS,
                      shared=SHARED_FIELDS)


def _given(value):
  """``value``, or None for the empty values a config uses for "the default"."""
  if value is None or (len(value) == 0 if hasattr(value, '__len__') else not value):
    return None
  return value


def defaults_for_empty(cfg: PosterConfig) -> PosterConfig:
  """The geometry's empty fields as None (their defaults), sequences as tuples."""
  as_tuple = lambda v: None if _given(v) is None else tuple(v)
  return cfg._replace(grid=as_tuple(cfg.grid), patches=as_tuple(cfg.patches),
                      poster_shape=as_tuple(cfg.poster_shape),
                      label_cells=_given(cfg.label_cells),
                      class_order=_given(cfg.class_order))


# ----------------------------------------------------------------------------------
# The poster: patches and initialisation.
# ----------------------------------------------------------------------------------


def extract_patches(poster, ys, xs, size) -> jnp.ndarray:
  """[P, H, W, C] crops of ``poster`` [Hp, Wp, C] at (ys[p], xs[p]), differentiably.

  A dynamic_slice under vmap is a gather; its gradient scatter-adds each patch's
  gradient back, so pixels shared by overlapping patches receive the sum (§4.1).
  """
  h, w = size
  c = poster.shape[-1]
  crop = lambda y, x: jax.lax.dynamic_slice(poster, (y, x, 0), (h, w, c))
  patches = jax.vmap(crop)(jnp.asarray(ys, jnp.int32), jnp.asarray(xs, jnp.int32))
  return sharding.shard_rows(patches)   # by patch; the gradient all-reduced into one poster


def _blend_1d(tiles, starts, total, axis):
  """Blends equal-length ``tiles`` placed at ``starts`` into one array of length ``total``
  on ``axis``, left to right as the authors' ``_blend_row``: ``acc ← m·acc + (1 − m)·tile``
  with the fade m = 1 before the tile, ``1 − linspace(0, 1, overlap)`` over its overlap
  with the previous tile, 0 after (``_get_fade_mask``)."""
  length = tiles[0].shape[axis]

  def place(t, s):
    pad = [(0, 0)] * t.ndim
    pad[axis] = (int(s), int(total - s - length))
    return jnp.pad(t, pad)

  shape = [1] * tiles[0].ndim
  shape[axis] = total
  acc = place(tiles[0], starts[0])
  for prev, s, t in zip(starts[:-1], starts[1:], tiles[1:]):
    m = np.zeros(total, np.float32)
    m[:s] = 1.0
    overlap = prev + length - s
    if overlap > 0:
      m[s:s + overlap] = 1.0 - np.linspace(0.0, 1.0, overlap, dtype=np.float32)
    m = jnp.asarray(m.reshape(shape))
    acc = m * acc + (1.0 - m) * place(t, s)
  return acc


def blend_tiles(tiles, geom: PosterGeometry) -> jnp.ndarray:
  """[Hp, Wp, C]: tiles [rows, cols, th, tw, C] blended with linear fades on the grid.

  Each row of tiles is blended along x, then the rows along y (``combine_images_with_
  fade`` in the authors' ``PoDD_utils.py``). Where three tiles overlap, the later fade
  overwrites part of the earlier one, as in that sequential code.
  """
  return blend_grid(tiles, geom.tile_y, geom.tile_x, geom.poster_hw)


def blend_grid(tiles, y_starts, x_starts, poster_hw) -> jnp.ndarray:
  """[Hp, Wp, C]: tiles [len(y_starts), len(x_starts), h, w, C], tile (i, j) placed at
  (y_starts[i], x_starts[j]), blended with ``blend_tiles``' fades."""
  hp, wp = poster_hw
  row_strips = [_blend_1d(list(row), x_starts, wp, axis=1) for row in tiles]
  return _blend_1d(row_strips, y_starts, hp, axis=0)


def gaussian_tiles(key, num_classes: int, shape) -> jnp.ndarray:
  """[K, *shape] unit-norm class tiles: the authors' ``init_gaussian`` then ``project``.

  Class means μ_k ~ N(0, I) in d = prod(shape) dimensions; tile_k ~ N(μ_k, σ²I) with
  σ = min_{i<j} ‖μ_i − μ_j‖ / 4 (the code calls σ a variance but passes it as the std);
  each tile divided by its L2 norm.
  """
  d = math.prod(shape)
  k_mean, k_tile = jax.random.split(key)
  means = jax.random.normal(k_mean, (num_classes, d), jnp.float32)
  sq = jnp.sum(means ** 2, axis=1)
  # The Gram form avoids a [K, K, d] difference tensor (CUB: 200·200·3072 floats).
  dist2 = sq[:, None] + sq[None, :] - 2.0 * means @ means.T
  off_diag = ~jnp.eye(num_classes, dtype=bool)
  sigma = jnp.sqrt(jnp.maximum(jnp.min(jnp.where(off_diag, dist2, jnp.inf)), 0.0)) / 4.0
  tiles = means + sigma * jax.random.normal(k_tile, (num_classes, d), jnp.float32)
  tiles = tiles / jnp.linalg.norm(tiles, axis=1, keepdims=True)
  return tiles.reshape((num_classes,) + tuple(shape))


# ----------------------------------------------------------------------------------
# Labels.
# ----------------------------------------------------------------------------------


def class_pixel_counts(geom: PosterGeometry, image_hw) -> np.ndarray:
  """float64 [P, K]: pixels of each patch inside each class tile (overlaps count twice).

  The rectangle-overlap form of the authors' per-pixel ``poster_labels_map`` sums.
  """
  h, w = image_hw
  th, tw = geom.tile_hw

  def overlap(p_start, p_len, t_start, t_len):   # [n_p, n_t] overlap lengths on one axis
    lo = np.maximum(p_start[:, None], t_start[None, :])
    hi = np.minimum(p_start[:, None] + p_len, t_start[None, :] + t_len)
    return np.maximum(hi - lo, 0).astype(np.float64)

  oy = overlap(geom.patch_y, h, geom.tile_y, th)                 # [n_y, rows]
  ox = overlap(geom.patch_x, w, geom.tile_x, tw)                 # [n_x, cols]
  return _cells_to_classes(geom, oy, ox)


def _cells_to_classes(geom: PosterGeometry, per_row, per_col) -> np.ndarray:
  """float64 [P, K] from a patch's pixels per class-grid row [n_y, rows] and column
  [n_x, cols]: their products per grid cell, each cell credited to its class."""
  n_x, n_y = geom.patches
  rows, cols = geom.grid
  cell = (per_row[:, None, :, None] * per_col[None, :, None, :]).reshape(n_y * n_x,
                                                                          rows * cols)
  counts = np.zeros((n_y * n_x, rows * cols))
  counts[:, geom.class_order.ravel()] = cell                     # cell (r, c) -> its class
  return counts


def upsampled_class_counts(geom: PosterGeometry, image_hw) -> np.ndarray:
  """float64 [P, K]: pixels of each patch per class in the class order matrix upsampled
  to the poster by nearest neighbour (poster pixel (y, x) -> cell ⌊y·rows/Hp⌋,
  ⌊x·cols/Wp⌋), the paper's §4.3 reading of a patch's classes."""
  h, w = image_hw
  (hp, wp), (rows, cols) = geom.poster_hw, geom.grid
  cell_y = np.floor(np.arange(hp) * rows / hp).astype(int)
  cell_x = np.floor(np.arange(wp) * cols / wp).astype(int)
  ay = np.stack([np.bincount(cell_y[s:s + h], minlength=rows) for s in geom.patch_y])
  ax = np.stack([np.bincount(cell_x[s:s + w], minlength=cols) for s in geom.patch_x])
  return _cells_to_classes(geom, ay, ax)


def fixed_patch_labels(geom: PosterGeometry, image_hw, kind: str = 'majority') -> np.ndarray:
  """float32 [P, K] fixed PoDDL labels: the paper's majority class (ties shared), the
  authors' softmax of tile pixel counts, or those counts' shares (module doc)."""
  if kind == 'majority':
    counts = upsampled_class_counts(geom, image_hw)
    top = counts == counts.max(axis=1, keepdims=True)
    return (top / top.sum(axis=1, keepdims=True)).astype(np.float32)
  counts = class_pixel_counts(geom, image_hw)
  if kind == 'softmax':
    e = np.exp(counts - counts.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
  total = counts.sum(axis=1, keepdims=True)
  # A patch in no tile (impossible with the default tiles) gets the uniform label, as
  # the authors' softmax of zero counts would.
  out = np.where(total > 0, counts / np.where(total > 0, total, 1), 1 / counts.shape[1])
  return out.astype(np.float32)


def init_label_map(geom: PosterGeometry, num_classes: int) -> np.ndarray:
  """float32 [h, w, K]: one-hot per class region, the authors' ``init_label_array``.

  Cell columns are split ``round(linspace(0, w, cols + 1))`` and rows likewise; the
  block of grid cell (r, c) is one-hot on class ``class_order[r, c]``.
  """
  (lh, lw), (rows, cols) = geom.label_hw, geom.grid
  ys = np.round(np.linspace(0, lh, rows + 1)).astype(int)
  xs = np.round(np.linspace(0, lw, cols + 1)).astype(int)
  y_map = np.zeros((lh, lw, num_classes), np.float32)
  for r in range(rows):
    for c in range(cols):
      y_map[ys[r]:ys[r + 1], xs[c]:xs[c + 1], geom.class_order[r, c]] = 1.0
  return y_map


def label_pool_weights(geom: PosterGeometry, image_hw, pool: str = 'area') -> np.ndarray:
  """float32 [P, h·w]: the weight of each label-map cell in each patch's label.

  'crop' (authors' code): 1 on a crop of max(1, ⌊W·w/Wp⌋) × max(1, ⌊H·h/Hp⌋) cells at
  ``round(linspace(0, w − lw', n_x))`` (and likewise for y). 'area' (paper §4.3): the
  number of the patch's pixels that the nearest-neighbour upsampling (cell
  ⌊y·h/Hp⌋, ⌊x·w/Wp⌋) maps to each cell, i.e. average pooling of the upsampled map.
  """
  h, w = image_hw
  (hp, wp), (lh, lw) = geom.poster_hw, geom.label_hw
  n_x, n_y = geom.patches
  if pool == 'crop':
    # The authors' float order: size · (1 / (poster / map)).
    cw = max(1, math.floor(w * (1 / (wp / lw))))
    ch = max(1, math.floor(h * (1 / (hp / lh))))
    ay = np.zeros((n_y, lh))
    ax = np.zeros((n_x, lw))
    for i, s in enumerate(crop_starts(lh, ch, n_y)):
      ay[i, s:s + ch] = 1.0
    for i, s in enumerate(crop_starts(lw, cw, n_x)):
      ax[i, s:s + cw] = 1.0
  else:
    cell_y = np.floor(np.arange(hp) * (lh / hp)).astype(int)
    cell_x = np.floor(np.arange(wp) * (lw / wp)).astype(int)
    ay = np.stack([np.bincount(cell_y[s:s + h], minlength=lh) for s in geom.patch_y])
    ax = np.stack([np.bincount(cell_x[s:s + w], minlength=lw) for s in geom.patch_x])
  return (ay[:, None, :, None] * ax[None, :, None, :]).reshape(n_y * n_x, lh * lw
                                                              ).astype(np.float32)


def pooled_labels(label_map, weights) -> jnp.ndarray:
  """[P, K]: ``weights @ map``, L1-normalised (divided by the sum, as the authors'
  ``labels /= labels.sum(1)``; equal to the L1 norm once the map is clamped ≥ 0).

  A patch whose cells are all zero gets the uniform label instead of 0/0.
  """
  k = label_map.shape[-1]
  raw = jnp.asarray(weights) @ label_map.reshape(-1, k)
  total = raw.sum(axis=1, keepdims=True)
  safe = jnp.where(total > 0, total, 1.0)
  return jnp.where(total > 0, raw / safe, 1.0 / k)


def poster_project(params):
  """PoDDL's projection after every optimizer update: the label map clamped ≥ 0 (§4.3).

  The poster is left as it is; without learned labels this is the identity.
  """
  if 'labels' not in params:
    return params
  return {**params, 'labels': jnp.maximum(params['labels'], 0.0)}


# ----------------------------------------------------------------------------------
# The parameterization.
# ----------------------------------------------------------------------------------


def patch_positions(geom: PosterGeometry) -> tuple[np.ndarray, np.ndarray]:
  """(ys [P], xs [P]): the start of patch ``iy·n_x + ix``, first along x."""
  n_x, n_y = geom.patches
  return np.repeat(geom.patch_y, n_x), np.tile(geom.patch_x, n_y)


def init_poster(cfg: PosterConfig, geom: PosterGeometry, num_classes: int, image_shape,
                key, sample_real) -> dict:
  """``{'poster': [Hp, Wp, C]}`` by ``cfg.init`` (module doc), plus the label map
  ``'labels'`` [h, w, K] (``init_label_map``) when learned."""
  h, w, c = image_shape
  (hp, wp), (th, tw) = geom.poster_hw, geom.tile_hw
  n_x, n_y = geom.patches
  if cfg.init == 'noise':
    poster = jax.random.normal(key, (hp, wp, c), jnp.float32)
  elif cfg.init == 'real_patches':   # patch p: image rank[p] of its majority class
    patch_class = np.argmax(fixed_patch_labels(geom, (h, w), 'majority'), axis=1)
    patch_rank = np.array([np.sum(patch_class[:p] == k)
                           for p, k in enumerate(patch_class)])
    per_class = int(patch_rank.max()) + 1
    images, _ = sample_real(per_class)         # [K·per_class, H, W, C], class-major
    chosen = jnp.asarray(images, jnp.float32)[patch_class * per_class + patch_rank]
    poster = blend_grid(chosen.reshape(n_y, n_x, h, w, c), geom.patch_y, geom.patch_x,
                        (hp, wp))
  else:
    if cfg.init == 'tiles':
      tiles = gaussian_tiles(key, num_classes, (th, tw, c))
    else:
      images, _ = sample_real(1)                      # [K, H, W, C], class-major
      tiles = jax.image.resize(jnp.asarray(images, jnp.float32),
                               (num_classes, th, tw, c), 'linear')
    poster = blend_tiles(tiles[geom.class_order], geom)
  params = {'poster': poster.astype(jnp.float32)}
  if cfg.learn_labels:
    params['labels'] = jnp.asarray(init_label_map(geom, num_classes))
  return params


def decode_poster(cfg: PosterConfig, geom: PosterGeometry, image_shape, hard, weights,
                  params) -> SynData:
  """The patches of the poster, with their pooled learned labels (``weights``, from
  ``label_pool_weights``) or the fixed ``hard`` ones."""
  ys, xs = patch_positions(geom)
  images = extract_patches(params['poster'], ys, xs, image_shape[:2])
  labels = pooled_labels(params['labels'], weights) if cfg.learn_labels else hard
  return SynData(images, labels, {})


def poster_budget(cfg: PosterConfig, num_classes: int, image_shape, params) -> Budget:
  """Stored floats of the poster (and label map); IPC = Hp·Wp / (K·H·W)."""
  h, w = image_shape[:2]
  detail = {'poster': int(params['poster'].size)}
  if cfg.learn_labels:
    detail['labels'] = int(params['labels'].size)
  p_h, p_w = params['poster'].shape[:2]
  return Budget(sum(detail.values()), p_h * p_w / (num_classes * h * w), detail)


def make_poster(*, num_classes: int, image_shape, ipc: float,
                **fields) -> Parameterization:
  """Builds the PoDD poster parameterization (module docstring for every rule).

  Args:
    num_classes: K ≥ 2.
    image_shape: (H, W, C) of the data set; patches have this shape.
    ipc: the budget in images per class, fractions allowed (0.3, 0.9, 1.0...); the
      poster holds about ``ipc·K·H·W`` pixels per channel.
    **fields: ``PosterConfig``'s (grid, patches, learn_labels, label_cells,
      class_order as a grid, poster_shape, init, fixed_labels, label_pool).

  Returns:
    A ``Parameterization``: params ``{'poster': float32 [Hp, Wp, C]}`` plus
    ``{'labels': float32 [h, w, K]}`` when learned; ``decode`` gives
    ``SynData(images [n_x·n_y, H, W, C], labels [n_x·n_y, K], {})``, patch
    ``iy·n_x + ix`` first along x. Its ``project`` is
    ``poster_project``.

  Raises:
    ConfigError: a bad value, naming the field and the accepted values.
  """
  cfg = read_section(fields, PosterConfig, 'parameterization', CHECKS)
  cfg = defaults_for_empty(cfg)
  geom = poster_geometry(num_classes=num_classes, image_shape=image_shape, ipc=ipc,
                         grid=cfg.grid, patches=cfg.patches, class_order=cfg.class_order,
                         poster_shape=cfg.poster_shape, label_cells=cfg.label_cells)
  image_shape = tuple(image_shape)
  hw = image_shape[:2]
  hard = jnp.asarray(fixed_patch_labels(geom, hw, cfg.fixed_labels))
  weights = label_pool_weights(geom, hw, cfg.label_pool) if cfg.learn_labels else None
  return Parameterization(
      functools.partial(init_poster, cfg, geom, num_classes, image_shape),
      functools.partial(decode_poster, cfg, geom, image_shape, hard, weights),
      functools.partial(poster_budget, cfg, num_classes, image_shape),
      project=poster_project)


def from_config(config, num_classes: int, image_shape, ds=None) -> Parameterization:
  """The registry's entry: ``make_poster`` of ``config.parameterization`` and ``ipc``;
  a PoCO ``class_order`` ('poco_text', 'poco_pixels') is resolved on ``ds``."""
  cfg = defaults_for_empty(parse(config.parameterization))
  order = cfg.class_order
  if isinstance(order, str):   # 'poco_text' / 'poco_pixels': PoCO on this data set
    if ds is None:
      raise ConfigError(f'parameterization.class_order={order!r} needs the data set')
    order = poco.resolve_class_order(order, ds, cfg.grid or default_grid(num_classes))
  return make_poster(num_classes=num_classes, image_shape=image_shape, ipc=config.ipc,
                     **cfg._replace(class_order=order)._asdict())
