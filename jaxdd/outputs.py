"""Files a run leaves for people: PNG grids and JSON; where they go (``as_path``).

A workdir may be a local directory or a URL (``gs://bucket/run``): paths are
``etils.epath.Path``, never ``os.path`` strings, which would turn ``gs://b/x`` into
``./gs:/b/x``.
"""

import json
import math

import numpy as np
from etils import epath
from PIL import Image


def as_path(path: epath.PathLike) -> epath.Path:
  """``path`` as an ``epath.Path``: a URL unchanged, a relative local path made
  absolute (orbax and the writers below get one spelling whatever the cwd)."""
  path = epath.Path(path)
  # A URL is absolute; epath's absolute() would prefix the cwd to it.
  return path if path.is_absolute() else path.absolute()


def write_json(path: epath.PathLike, obj) -> None:
  """Writes ``obj`` atomically (a killed run never leaves half a file)."""
  path = epath.Path(path)
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(obj, indent=2))
  tmp.replace(path)


def write_npz(path: epath.PathLike, **arrays) -> None:
  """``np.savez`` to ``path`` atomically (a temporary file renamed into place): a
  killed run never leaves a truncated ``distilled.npz`` that a rerun would reuse."""
  path = epath.Path(path)
  tmp = path.with_name(path.name + '.tmp')
  with tmp.open('wb') as f:   # a file object: np.savez would append '.npz' to a name
    np.savez(f, **arrays)
  tmp.replace(path)


def grid_image(pixels: np.ndarray, classes: np.ndarray, num_classes: int,
               min_cell: int = 32, pad: int = 1) -> np.ndarray:
  """One row per class, its images left to right; returns uint8 [rows, cols, 3].

  Args:
    pixels: [N, H, W, C] de-normalised images, roughly in [0, 1] (clipped here).
    classes: int [N] the row of each image.
    num_classes: number of rows.
    min_cell: small images are upscaled (nearest) to at least this many pixels.
    pad: white pixels between cells.
  """
  pixels = np.clip(np.asarray(pixels, np.float32), 0.0, 1.0)
  n, h, w, c = pixels.shape
  if c == 1:
    pixels = np.repeat(pixels, 3, axis=-1)
  elif c != 3:
    pixels = np.repeat(pixels.mean(-1, keepdims=True), 3, axis=-1)
  scale = max(1, math.ceil(min_cell / max(h, w)))
  pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
  h, w = h * scale, w * scale
  rows = [np.flatnonzero(classes == k) for k in range(num_classes)]
  cols = max(1, max(len(r) for r in rows))
  out = np.ones((num_classes * (h + pad) + pad, cols * (w + pad) + pad, 3), np.float32)
  for k, members in enumerate(rows):
    for j, i in enumerate(members):
      y, x = pad + k * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = pixels[i]
  return (out * 255 + 0.5).astype(np.uint8)


def save_grid_png(path: epath.PathLike, pixels, classes, num_classes: int,
                  min_cell: int = 32) -> None:
  image = Image.fromarray(grid_image(pixels, np.asarray(classes), num_classes,
                                     min_cell=min_cell))
  with epath.Path(path).open('wb') as f:
    image.save(f, format='PNG')
