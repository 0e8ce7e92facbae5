"""The static geometry of a PoDD poster: sizes, class tiles, patch and label positions.

The rules (the poster's size from the budget, the class grid, the patch count at the
paper's CIFAR-10 density, tile and patch starts, the learned-label map's shape) are
described in ``jaxdd.parameterizations.poster``'s module docstring; ``poster_geometry`` checks a
configuration and returns every size and position as a ``PosterGeometry``. NumPy only:
nothing here is traced.
"""
import math
from typing import NamedTuple

import numpy as np

from jaxdd.errors import ConfigError, is_int, is_num

# The paper's CIFAR-10 run: 96 patches on a 153×60 poster of 32×32 images.
PATCH_DENSITY = 96 * 32 * 32 / (153 * 60)


def crop_starts(full: int, size: int, n: int) -> np.ndarray:
  """int [n]: ``round(linspace(0, full − size, n))``, the authors' ``_get_patch_index_lst``.

  NumPy rounds halves to even, as the authors' ``np.round`` does (60.5 -> 60).
  """
  return np.round(np.linspace(0, full - size, n)).astype(np.int32)


def default_grid(num_classes: int) -> tuple[int, int]:
  """(rows, cols): the factorisation of K with rows the largest divisor ≤ √K."""
  rows = max(d for d in range(1, math.isqrt(num_classes) + 1) if num_classes % d == 0)
  return rows, num_classes // rows


def poster_size(ipc: float, num_classes: int, image_shape, grid) -> tuple[int, int]:
  """(Hp, Wp) of a budget of ``ipc`` images per class, with the class grid's aspect."""
  h, w = image_shape[:2]
  rows, cols = grid
  pixels = ipc * num_classes * h * w
  # The 1e-9 keeps exact budgets exact: 1 IPC CIFAR-10 is 64×160 = 5×2 tiles of 32×32.
  hp = math.floor(math.sqrt(pixels * rows / cols) + 1e-9)
  if hp < h:
    hp = h
  elif pixels / hp < w:
    hp = math.floor(pixels / w + 1e-9)
  wp = math.floor(pixels / hp + 1e-9)
  if hp < h or wp < w:
    raise ConfigError(
        f'ipc = {ipc} buys {pixels:.0f} poster pixels, fewer than one {h}×{w} image: '
        f'ipc must be at least 1/K = {1 / num_classes:.4g}')
  return hp, wp


def split_patches(total: int, poster_hw) -> tuple[int, int]:
  """(n_x, n_y) of about ``total`` patches with the poster's aspect: n_x = round(√(p·Wp/Hp))."""
  hp, wp = poster_hw
  n_x = max(1, round(math.sqrt(total * wp / hp)))
  return n_x, max(1, round(total / n_x))


def default_patches(poster_hw, image_shape) -> tuple[int, int]:
  """(n_x, n_y) at the paper's CIFAR-10 patch density, at most one per crop position."""
  (hp, wp), (h, w) = poster_hw, image_shape[:2]
  n_x, n_y = split_patches(max(1, round(PATCH_DENSITY * hp * wp / (h * w))), poster_hw)
  return min(n_x, wp - w + 1), min(n_y, hp - h + 1)


def label_map_shape(label_cells: int, grid, poster_hw) -> tuple[int, int]:
  """(h, w): the largest map ≤ label_cells cells covering the grid, nearest the poster's aspect.

  Among h ≥ rows, w ≥ cols (every class region gets a cell), h ≤ Hp, w ≤ Wp: the most
  cells, then the aspect h/w closest to Hp/Wp in log scale, then the smaller h.
  """
  rows, cols = grid
  hp, wp = poster_hw
  candidates = []
  for h in range(rows, min(hp, label_cells // cols) + 1):
    w = min(label_cells // h, wp)
    if w >= cols:
      candidates.append((-h * w, abs(math.log(h / w * wp / hp)), h, w))
  _, _, h, w = min(candidates)
  return h, w


class PosterGeometry(NamedTuple):
  """Every static size and position of a poster (module docstring for the rules).

  Attributes:
    poster_hw: (Hp, Wp). grid: (rows, cols) of the class grid. class_order: int
    [rows, cols]. tile_hw: (th, tw) of a class tile; tile_y [rows], tile_x [cols]: tile
    starts. patches: (n_x, n_y); patch_y [n_y], patch_x [n_x]: patch starts (patch
    ``iy·n_x + ix`` starts at (patch_y[iy], patch_x[ix])). label_hw: (h, w) of the label
    map (used only with learned labels).
  """
  poster_hw: tuple
  grid: tuple
  class_order: np.ndarray
  tile_hw: tuple
  tile_y: np.ndarray
  tile_x: np.ndarray
  patches: tuple
  patch_y: np.ndarray
  patch_x: np.ndarray
  label_hw: tuple


def _ints(value, n, field, what):
  """``value`` as a tuple of ``n`` positive ints, else a ConfigError naming ``field``."""
  seq = value if isinstance(value, (tuple, list, np.ndarray)) else [value]
  if len(seq) != n or not all(is_int(v) and v > 0 for v in seq):
    raise ConfigError(f'{field} must be {what}, got {value!r}')
  return tuple(int(v) for v in seq)


def poster_geometry(*, num_classes, image_shape, ipc, grid=None, patches=None,
                    class_order=None, poster_shape=None, label_cells=None) -> PosterGeometry:
  """Checks the configuration and computes the poster's geometry (module docstring).

  Raises:
    ConfigError: naming the field and the accepted values, before anything is compiled.
  """
  k, = _ints(num_classes, 1, 'num_classes', 'an integer ≥ 2')
  if k < 2:
    raise ConfigError(f'num_classes must be an integer ≥ 2 (a poster shares pixels '
                      f'between classes), got {k}')
  h, w, _ = _ints(image_shape, 3, 'image_shape', '(H, W, C) of positive integers')
  if not is_num(ipc) or not math.isfinite(ipc) or ipc <= 0:
    raise ConfigError(f'ipc must be a positive number (fractions allowed), got {ipc!r}')
  if class_order is not None:
    class_order = np.asarray(class_order)
    grid = class_order.shape if grid is None else grid
  grid = default_grid(k) if grid is None else _ints(
      grid, 2, 'parameterization.grid', '(rows, cols) of positive integers')
  if grid[0] * grid[1] != k:
    raise ConfigError(f'parameterization.grid (rows, cols) must have rows·cols = K = {k}, '
                      f'got {grid}; default {default_grid(k)}')
  if class_order is None:
    class_order = np.arange(k).reshape(grid)
  elif class_order.shape != grid or sorted(class_order.ravel().tolist()) != list(range(k)):
    raise ConfigError(f'parameterization.class_order must be a {grid} grid holding each '
                      f'class 0..{k - 1} once, got {class_order.tolist()}')
  if poster_shape is None:
    hp, wp = poster_size(ipc, k, (h, w), grid)
  else:
    hp, wp = _ints(poster_shape, 2, 'parameterization.poster_shape', '(Hp, Wp)')
    if hp < h or wp < w:
      raise ConfigError(f'parameterization.poster_shape must be at least the image size '
                        f'({h}, {w}), got {(hp, wp)}')
  n_x, n_y = _ints(default_patches((hp, wp), (h, w)) if patches is None else patches, 2,
                   'parameterization.patches', '(n_x, n_y) of positive integers')
  if n_x > wp - w + 1 or n_y > hp - h + 1:
    raise ConfigError(f'parameterization.patches (n_x, n_y) must be at most the '
                      f'{(wp - w + 1, hp - h + 1)} crop positions of a {hp}×{wp} poster, '
                      f'got {(n_x, n_y)}')
  cells, = _ints(k * max(1, round(ipc)) if label_cells is None else label_cells, 1,
                 'parameterization.label_cells', f'an integer in {k}..{hp * wp}')
  if not k <= cells <= hp * wp:
    raise ConfigError(f'parameterization.label_cells must be an integer in {k}..{hp * wp}'
                      f' (K..Hp·Wp), got {cells}')
  rows, cols = grid
  th, tw = min(hp, max(h, -(-hp // rows))), min(wp, max(w, -(-wp // cols)))
  return PosterGeometry(
      (hp, wp), grid, class_order.astype(np.int32), (th, tw), crop_starts(hp, th, rows),
      crop_starts(wp, tw, cols), (n_x, n_y), crop_starts(hp, h, n_y),
      crop_starts(wp, w, n_x), label_map_shape(cells, grid, (hp, wp)))
