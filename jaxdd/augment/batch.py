"""torchvision-style batch augmentation of the squeeze-recover-relabel family (NHWC).

SRe2L, UniDD/CFM and EDC (docs/methods.md §1 "SRe2L", §2 "UniDD", "EDC") augment with
torchvision transforms and batch mixing rather than with DSA (``jaxdd.augment.dsa``):

  * ``RandomResizedCrop``: ``rrc_boxes`` draws the boxes (``get_params``), and
    ``resized_crop`` crops and resizes them bilinearly (``F.resized_crop``);
    ``random_resized_crop`` does both.
  * ``RandomCrop(size, padding)``: ``pad_crop``, a translation with zero fill.
  * ``RandomHorizontalFlip(0.5)``: ``random_flip``.
  * CutMix (UniDD/EDC ``cutmix``, one box for the batch) and Mixup (SRe2L
    ``mixup_data``): ``cutmix``, ``mixup``.

The authors apply a transform in two ways, and both are kept as a parameter of one
function: *per sample* (a torchvision transform inside the data loader: relabel, the
squeeze teachers) or *shared by the batch* (the transform called on the whole synthetic
batch tensor, as SRe2L/CFM/EDC's recover loops do). ``rrc_boxes(key, n=None)`` draws
one box for the batch, ``resized_crop`` takes scalar or per-image boxes, and
``random_flip`` / ``random_resized_crop`` take ``per_sample``.

Everything is pure and jit/vmap-able, and differentiable in the images (crops are
interpolation matmuls or gathers, flips reversals, mixes masks and convex sums).
Translation and flipping reuse ``jaxdd.augment.dsa.translate`` / ``flip_width``.
"""

import math

import jax
import jax.numpy as jnp

from jaxdd.augment import dsa as dsa_lib


# ----------------------------------------------------------------------------------
# RandomResizedCrop.
# ----------------------------------------------------------------------------------


def _interp_matrix(start, length, size_in: int, size_out: int) -> jax.Array:
  """Bilinear weights [..., size_out, size_in] resizing [start, start+length) to size_out.

  PyTorch's ``interpolate(mode='bilinear', align_corners=False)`` on the crop: source
  coordinate (i + 0.5)·length/size_out − 0.5, clamped to [0, length − 1] (PyTorch
  clamps at 0 and repeats the last pixel, the same weights). Crops are never larger
  than the image, so torchvision's antialias changes nothing. ``start`` and
  ``length`` are int scalars or arrays of one shape [...].
  """
  length = jnp.asarray(length).astype(jnp.float32)[..., None]
  src = (jnp.arange(size_out, dtype=jnp.float32) + 0.5) * length / size_out - 0.5
  src = jnp.clip(src, 0.0, length - 1)
  i0 = jnp.floor(src)
  frac = (src - i0)[..., None]
  i1 = jnp.minimum(i0 + 1, length - 1)
  start = jnp.asarray(start).astype(jnp.float32)[..., None]
  hot = lambda i: jax.nn.one_hot((start + i).astype(jnp.int32), size_in)
  return (1 - frac) * hot(i0) + frac * hot(i1)


def resized_crop(x, top, left, height, width) -> jax.Array:
  """Crops the box [top, top+height) × [left, left+width) and resizes it to H × W.

  torchvision ``F.resized_crop`` (bilinear): out[n, i, j] = Σ_{h, w} R[i, h] x[n, h,
  w] C[j, w], R and C the ``_interp_matrix`` rows of the box.

  Args:
    x: [N, H, W, C].
    top, left, height, width: int scalars (one box for the whole batch) or int [N]
      (box n for image n); boxes lie inside the image.

  Returns:
    [N, H, W, C].
  """
  _, h, w, _ = x.shape
  rows = _interp_matrix(top, height, h, h)     # [H, H] or [N, H, H]
  cols = _interp_matrix(left, width, w, w)
  if rows.ndim == 2:
    return jnp.einsum('ih,nhwc,jw->nijc', rows, x, cols)
  return jnp.einsum('nih,nhwc,njw->nijc', rows, x, cols)


def rrc_boxes(key, n: int | None, h: int, w: int, scale, ratio, attempts: int = 10):
  """torchvision ``RandomResizedCrop.get_params``, vectorised over ``n`` images.

  Up to ``attempts`` (10) draws of (area = U(scale)·H·W, log aspect ~ U(log ratio)),
  sides w = round(√(area·aspect)), h = round(√(area/aspect)); the first draw that fits
  wins and its top/left corner is uniform; if none fits, torchvision's fallback: the
  central crop of the whole image clamped to ``ratio`` (the whole image when the
  image's aspect lies in ``ratio``).

  Args:
    key: PRNG key.
    n: number of boxes, or None for one box shared by a batch (scalar outputs).
    h, w: image size.
    scale: (lo, hi) area fractions; ratio: (lo, hi) aspect ratios w/h.
    attempts: tries before the fallback.

  Returns:
    (top, left, height, width), int32 [n] each (scalars when ``n`` is None).
  """
  # One draw for everything: each random draw is its own threefry kernel, and XLA's
  # compile time grows with their number (see ``jaxdd.augment.dsa``).
  u = jax.random.uniform(key, (1 if n is None else n, 2 * attempts + 2))
  area = (scale[0] + (scale[1] - scale[0]) * u[:, :attempts]) * h * w
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[:, attempts:2 * attempts])
  cw = jnp.round(jnp.sqrt(area * aspect))   # round half to even, as Python's round
  ch = jnp.round(jnp.sqrt(area / aspect))
  ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
  first = jnp.argmax(ok, axis=1)[:, None]
  found = jnp.any(ok, axis=1)
  if w / h < ratio[0]:
    fw, fh = w, int(round(w / ratio[0]))
  elif w / h > ratio[1]:
    fw, fh = int(round(h * ratio[1])), h
  else:
    fw, fh = w, h
  height = jnp.where(found, jnp.take_along_axis(ch, first, 1)[:, 0], fh).astype(jnp.int32)
  width = jnp.where(found, jnp.take_along_axis(cw, first, 1)[:, 0], fw).astype(jnp.int32)
  # torch.randint(0, h - ch + 1) as floor(u · (h − ch + 1)).
  top = jnp.floor(u[:, -2] * (h - height + 1)).astype(jnp.int32)
  left = jnp.floor(u[:, -1] * (w - width + 1)).astype(jnp.int32)
  top = jnp.where(found, top, (h - fh) // 2)
  left = jnp.where(found, left, (w - fw) // 2)
  boxes = (top, left, height, width)
  return tuple(b[0] for b in boxes) if n is None else boxes


def random_resized_crop(key, x, scale, ratio, *, per_sample: bool = True) -> jax.Array:
  """torchvision ``RandomResizedCrop(H, scale, ratio)`` on x [N, H, W, C]: one box per
  image (``per_sample``, a data-loader transform) or one for the batch."""
  n, h, w, _ = x.shape
  return resized_crop(x, *rrc_boxes(key, n if per_sample else None, h, w, scale, ratio))


# ----------------------------------------------------------------------------------
# RandomCrop(padding) and RandomHorizontalFlip.
# ----------------------------------------------------------------------------------


def pad_crop(key, x, padding: int) -> jax.Array:
  """torchvision ``RandomCrop(H, padding)`` per image: zero-pad by ``padding``, then a
  uniformly placed H × W window, i.e. out[n, r, c] = x[n, r + dh_n, c + dw_n] (0
  outside the image) with dh, dw ~ U{−padding..padding} (``dsa_lib.translate``).

  The zeros are in the space of ``x``: for normalised images that is the mean colour,
  where torchvision pads raw pixels with black.
  """
  if not padding:
    return x
  # One draw for both axes: every random call site costs compile time on XLA:CPU.
  shift = jax.random.randint(key, (2, x.shape[0]), -padding, padding + 1)
  return dsa_lib.translate(x, shift[0], shift[1])


def random_flip(key, x, *, per_sample: bool = True) -> jax.Array:
  """``RandomHorizontalFlip(0.5)``: mirrors each image (``per_sample``), or the whole
  batch at once, along W with probability 1/2."""
  fire = jax.random.bernoulli(key, 0.5, (x.shape[0],) if per_sample else ())
  return dsa_lib.flip_width(x, fire)


# ----------------------------------------------------------------------------------
# Batch mixing.
# ----------------------------------------------------------------------------------


def _symmetric_beta(key, alpha: float) -> jax.Array:
  """λ ~ Beta(α, α) as X / (X + Y) of two Gamma(α) draws, in log space; one gamma
  kernel instead of ``jax.random.beta``'s two (a third less compile time)."""
  log_xy = jax.random.loggamma(key, alpha, (2,))
  return jax.nn.sigmoid(log_xy[0] - log_xy[1])


def cutmix(key, x, alpha: float) -> jax.Array:
  """One CutMix box for the batch, pasted from a permutation of it (UniDD/EDC ``cutmix``).

  λ ~ Beta(α, α); the box has sides 2·⌊⌊H·√(1−λ)⌋/2⌋ around a uniform centre, clipped
  to the image (the authors' ``rand_bbox``). Only the images change (labels come
  from the teacher, which sees the mixed batch).
  """
  n, h, w, _ = x.shape
  k_perm, k_lam, k_centre = jax.random.split(key, 3)
  perm = jax.random.permutation(k_perm, n)
  cut = jnp.sqrt(1.0 - _symmetric_beta(k_lam, alpha))
  half_h = jnp.floor(h * cut).astype(jnp.int32) // 2
  half_w = jnp.floor(w * cut).astype(jnp.int32) // 2
  u = jax.random.uniform(k_centre, (2,))
  cy = jnp.floor(u[0] * h).astype(jnp.int32)   # randint(0, h), one draw for both
  cx = jnp.floor(u[1] * w).astype(jnp.int32)
  rows, cols = jnp.arange(h), jnp.arange(w)
  in_rows = (rows >= jnp.clip(cy - half_h, 0, h)) & (rows < jnp.clip(cy + half_h, 0, h))
  in_cols = (cols >= jnp.clip(cx - half_w, 0, w)) & (cols < jnp.clip(cx + half_w, 0, w))
  box = (in_rows[:, None] & in_cols[None, :])[None, :, :, None]
  return jnp.where(box, x[perm], x)


def mixup(key, x, alpha: float) -> jax.Array:
  """λ x + (1 − λ) x[perm] with one λ ~ Beta(α, α) for the batch (SRe2L ``mixup_data``)."""
  k_perm, k_lam = jax.random.split(key)
  lam = _symmetric_beta(k_lam, alpha)
  return lam * x + (1 - lam) * x[jax.random.permutation(k_perm, x.shape[0])]


__all__ = ['resized_crop', 'rrc_boxes', 'random_resized_crop', 'pad_crop', 'random_flip',
           'cutmix', 'mixup']
