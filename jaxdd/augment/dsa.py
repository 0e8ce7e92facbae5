"""Differentiable Siamese Augmentation (DSA) for NHWC float images.

Reference: Zhao & Bilen, "Dataset Condensation with Differentiable Siamese
Augmentation", ICML 2021; code `DCrepo:utils.py` (``ParamDiffAug``, ``DiffAugment``
and the ``rand_*`` functions), itself adapted from DiffAugment (Zhao et al., 2020).

What a call does (DCrepo's ``aug_mode='S'``):

* One group of the strategy (``'color_crop_cutout_flip_scale_rotate'`` by default) is
  chosen at random from ``key`` and applied to the whole batch. ``'color'`` applies
  brightness, then saturation, then contrast, each with its own draw.
* ``siamese=True``: ONE set of transform parameters, drawn from ``key`` alone, is used
  for every sample. The draws never depend on the batch size, so a real batch of 256
  and a synthetic batch of 10 augmented with the same key get the same transform (this
  is how DC/DSA/DM pair real and synthetic images; DCrepo does it by re-seeding torch
  and copying sample 0's parameters to the batch).
* ``siamese=False``: parameters are drawn per sample (MTT inner steps, evaluation);
  the group is still chosen once per call, as in DCrepo.

Every transform is differentiable with respect to the images: colour is affine in the
pixels, crop and cutout use integer gathers and masks (whose gradients route back to
the pixels that were kept), flip is a reversal, and scale/rotate resample on an affine
grid with bilinear interpolation and zero padding (PyTorch's ``affine_grid`` +
``grid_sample``). ``dsa`` is jit-able with ``strategy``, ``siamese`` and ``params``
static, and works under ``vmap`` (over keys or batches) and ``grad``.

The module has three layers, so tests and users can reach each one:

1. explicit transforms with given parameters (``adjust_brightness``, ``translate``,
   ``cutout``, ``flip_width``, ``affine_warp`` ...), no randomness;
2. random transforms ``rand_*(key, x, siamese, params)`` that draw the parameters
   (via ``_draw_uniform``/``_draw_randint``) and call layer 1;
3. ``dsa_group`` (one named group) and ``dsa`` (a random group of a strategy).
"""

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdd.errors import ConfigError

__all__ = [
    'DEFAULT_STRATEGY', 'GROUPS', 'DSAParams', 'dsa', 'dsa_group', 'parse_strategy',
]


class DSAParams(NamedTuple):
  """Strengths of the DSA transforms; the defaults are DCrepo's ``ParamDiffAug``.

  Must hold Python numbers (it is a static argument under ``jit``: the crop padding
  and the cutout size are array shapes/bounds and so must be concrete).

  Attributes:
    ratio_scale: scale factors are drawn from U[1/ratio_scale, ratio_scale].
    ratio_rotate: rotation angles are drawn from U[-ratio_rotate, ratio_rotate] degrees.
    ratio_crop_pad: maximal translation as a fraction of H (rows) and W (columns).
    ratio_cutout: side of the zeroed square as a fraction of H and W.
    prob_flip: probability of a horizontal flip.
    brightness: ``x + (u - 0.5) * brightness``.
    saturation: ``mean_c + (x - mean_c) * (u * saturation)``, mean over channels.
    contrast: ``mean + (x - mean) * (u + contrast)``, mean over the whole image.
    align_corners: sampling-grid convention of scale/rotate, as in PyTorch's
      ``affine_grid``/``grid_sample``. DCrepo passes no value, which in PyTorch >= 1.3
      means False (pixel-edge convention); True gives the pre-1.3 behaviour.
  """
  ratio_scale: float = 1.2
  ratio_rotate: float = 15.0
  ratio_crop_pad: float = 0.125
  ratio_cutout: float = 0.5
  prob_flip: float = 0.5
  brightness: float = 1.0
  saturation: float = 2.0
  contrast: float = 0.5
  align_corners: bool = False


DEFAULT_STRATEGY = 'color_crop_cutout_flip_scale_rotate'
GROUPS = ('color', 'crop', 'cutout', 'flip', 'scale', 'rotate')

# A random transform ``rand_*(key, x, siamese, params) -> x'``, the signature of every
# group below:
#   key: PRNG key, the only source of randomness.
#   x: float images, (N, H, W, C).
#   siamese: True draws ONE parameter set (independent of N) for the whole batch, False
#     one per sample.
#   params: DSAParams (Python numbers).
# It returns images of the same shape and dtype, differentiable with respect to x.
Transform = Callable[[jax.Array, jax.Array, bool, DSAParams], jax.Array]


# ----------------------------------------------------------------------------------
# Strategy parsing.
# ----------------------------------------------------------------------------------


def parse_strategy(strategy: str) -> tuple[str, ...]:
  """Splits and validates a DSA strategy string such as ``'color_crop_flip'``.

  Tokens are separated by ``'_'``. Repeated tokens are kept (as in DCrepo, a group
  listed twice is chosen twice as often). ``'none'``, ``'None'`` and ``''`` mean no
  augmentation.

  Args:
    strategy: the strategy string (config field ``dsa_strategy``).

  Returns:
    The groups in order; ``()`` for no augmentation.

  Raises:
    ConfigError: if ``strategy`` is not a string or names an unknown group.
  """
  accepted = f'groups {", ".join(GROUPS)} joined by "_", or "none"'
  if not isinstance(strategy, str):
    raise ConfigError(f'dsa_strategy must be a string of {accepted}; got {strategy!r}')
  if strategy.strip().lower() in ('', 'none'):
    return ()
  groups = tuple(strategy.strip().split('_'))
  for group in groups:
    if group not in GROUPS:
      raise ConfigError(f'dsa_strategy {strategy!r} has unknown group {group!r}; '
                        f'accepted: {accepted}')
  return groups


# ----------------------------------------------------------------------------------
# Random draws. Each random transform makes ONE draw for all its parameters (a row per
# parameter) rather than one per parameter: every draw is a threefry kernel, and one per
# parameter doubled the XLA compile time of ``dsa``.
# ----------------------------------------------------------------------------------


def _draw_uniform(key: jax.Array, n: int, siamese: bool, count: int = 1,
                  minval: float = 0.0, maxval: float = 1.0) -> jax.Array:
  """``count`` float32 uniforms in [minval, maxval) per sample, shape ``(count, n)``.

  In siamese mode one value per row is drawn (shape ``(count, 1)``) and broadcast, so
  the draw depends on ``key`` only and not on the batch size.
  """
  u = jax.random.uniform(key, (count, 1 if siamese else n), jnp.float32, minval, maxval)
  return jnp.broadcast_to(u, (count, n))


def _draw_randint(key: jax.Array, n: int, siamese: bool, minval: tuple[int, ...],
                  maxval: tuple[int, ...]) -> jax.Array:
  """Int32 draws, row r in [minval[r], maxval[r]), shape ``(len(minval), n)``.

  Shared across the batch in siamese mode, as in ``_draw_uniform``.
  """
  low = jnp.asarray(minval, jnp.int32)[:, None]
  high = jnp.asarray(maxval, jnp.int32)[:, None]
  r = jax.random.randint(key, (len(minval), 1 if siamese else n), low, high, jnp.int32)
  return jnp.broadcast_to(r, (len(minval), n))


def _per_sample(v: jax.Array, x: jax.Array) -> jax.Array:
  """Reshapes per-sample values ``(N,)`` to ``(N, 1, 1, 1)`` in the dtype of ``x``."""
  return jnp.asarray(v, x.dtype).reshape((-1, 1, 1, 1))


# ----------------------------------------------------------------------------------
# Colour. x: (N, H, W, C); u: (N,) uniforms in [0, 1).
# ----------------------------------------------------------------------------------


def adjust_brightness(x: jax.Array, u: jax.Array, strength: float) -> jax.Array:
  """``x + (u - 0.5) * strength``, one offset per sample over pixels and channels."""
  return x + (_per_sample(u, x) - 0.5) * strength


def adjust_saturation(x: jax.Array, u: jax.Array, strength: float) -> jax.Array:
  """Scales each pixel's deviation from its channel mean by ``u * strength``."""
  mean = x.mean(axis=-1, keepdims=True)
  return (x - mean) * (_per_sample(u, x) * strength) + mean


def adjust_contrast(x: jax.Array, u: jax.Array, strength: float) -> jax.Array:
  """Scales the deviation from the image mean (pixels and channels) by ``u + strength``."""
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (_per_sample(u, x) + strength) + mean


def rand_brightness(key: jax.Array, x: jax.Array, siamese: bool,
                    params: DSAParams) -> jax.Array:
  """DCrepo ``rand_brightness``: shift by U[-0.5, 0.5) * ``params.brightness``."""
  (u,) = _draw_uniform(key, x.shape[0], siamese)
  return adjust_brightness(x, u, params.brightness)


def rand_saturation(key: jax.Array, x: jax.Array, siamese: bool,
                    params: DSAParams) -> jax.Array:
  """DCrepo ``rand_saturation``: saturation factor U[0, 1) * ``params.saturation``."""
  (u,) = _draw_uniform(key, x.shape[0], siamese)
  return adjust_saturation(x, u, params.saturation)


def rand_contrast(key: jax.Array, x: jax.Array, siamese: bool,
                  params: DSAParams) -> jax.Array:
  """DCrepo ``rand_contrast``: contrast factor U[0, 1) + ``params.contrast``."""
  (u,) = _draw_uniform(key, x.shape[0], siamese)
  return adjust_contrast(x, u, params.contrast)


def rand_color(key: jax.Array, x: jax.Array, siamese: bool,
               params: DSAParams) -> jax.Array:
  """The ``'color'`` group: brightness, then saturation, then contrast.

  Each of the three gets its own independent uniform (one row of a single draw).
  """
  u_b, u_s, u_c = _draw_uniform(key, x.shape[0], siamese, count=3)
  x = adjust_brightness(x, u_b, params.brightness)
  x = adjust_saturation(x, u_s, params.saturation)
  return adjust_contrast(x, u_c, params.contrast)


# ----------------------------------------------------------------------------------
# Crop (integer translation with zero fill), cutout, flip.
# ----------------------------------------------------------------------------------


def translate(x: jax.Array, shift_h: jax.Array, shift_w: jax.Array) -> jax.Array:
  """Integer translation with zero fill: ``out[n, i, j] = x[n, i + sh[n], j + sw[n]]``.

  Pixels whose source lies outside the image are zero. A positive shift moves the
  content up (rows) or left (columns), as in DCrepo's ``rand_crop``. Written as a
  gather, so the gradient flows back to every pixel that stays in view.

  Args:
    x: images, (N, H, W, C).
    shift_h: integer row shifts, (N,).
    shift_w: integer column shifts, (N,).

  Returns:
    The translated images, (N, H, W, C).
  """
  n, h, w, _ = x.shape
  rows = jnp.arange(h)[None, :] + jnp.asarray(shift_h)[:, None]  # (N, H)
  cols = jnp.arange(w)[None, :] + jnp.asarray(shift_w)[:, None]  # (N, W)
  valid = (((rows >= 0) & (rows < h))[:, :, None]
           & ((cols >= 0) & (cols < w))[:, None, :])  # (N, H, W)
  # Clip to gather something in range, then zero what came from outside the image.
  gathered = x[jnp.arange(n)[:, None, None],
               jnp.clip(rows, 0, h - 1)[:, :, None],
               jnp.clip(cols, 0, w - 1)[:, None, :]]
  return jnp.where(valid[..., None], gathered, jnp.zeros((), x.dtype))


def crop_pad(size: int, ratio: float) -> int:
  """DCrepo's maximal crop shift (and cutout side) for one axis: ``int(size*ratio+.5)``."""
  return int(size * ratio + 0.5)


def rand_crop(key: jax.Array, x: jax.Array, siamese: bool,
              params: DSAParams) -> jax.Array:
  """DCrepo ``rand_crop``: shifts uniform in [-pad, pad] per axis, pad = 0.125·size."""
  n, h, w, _ = x.shape
  pad_h, pad_w = crop_pad(h, params.ratio_crop_pad), crop_pad(w, params.ratio_crop_pad)
  shift_h, shift_w = _draw_randint(key, n, siamese, (-pad_h, -pad_w),
                                   (pad_h + 1, pad_w + 1))
  return translate(x, shift_h, shift_w)


def cutout(x: jax.Array, centre_h: jax.Array, centre_w: jax.Array,
           size: tuple[int, int]) -> jax.Array:
  """Zeroes a ``size`` rectangle per image, rows ``[centre_h - size_h//2, +size_h)``.

  Parts of the rectangle outside the image are ignored (DCrepo clamps the indices,
  which zeroes the same in-image pixels).

  Args:
    x: images, (N, H, W, C).
    centre_h: integer row centres, (N,).
    centre_w: integer column centres, (N,).
    size: (size_h, size_w), static ints.

  Returns:
    The images with the rectangle set to zero, (N, H, W, C).
  """
  _, h, w, _ = x.shape
  size_h, size_w = size
  top = jnp.asarray(centre_h)[:, None] - size_h // 2  # (N, 1)
  left = jnp.asarray(centre_w)[:, None] - size_w // 2
  rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
  in_h = (rows >= top) & (rows < top + size_h)  # (N, H)
  in_w = (cols >= left) & (cols < left + size_w)  # (N, W)
  keep = ~(in_h[:, :, None] & in_w[:, None, :])  # (N, H, W)
  # A multiplicative mask (as DCrepo): the gradient is 1 outside the hole, 0 inside.
  return x * keep[..., None].astype(x.dtype)


def rand_cutout(key: jax.Array, x: jax.Array, siamese: bool,
                params: DSAParams) -> jax.Array:
  """DCrepo ``rand_cutout``: a square of side 0.5·size at a random centre.

  As in DCrepo the centre is uniform in [0, size] for an even side ([0, size) for an
  odd one), so the square may stick out of the image but always overlaps it.
  """
  n, h, w, _ = x.shape
  size_h, size_w = crop_pad(h, params.ratio_cutout), crop_pad(w, params.ratio_cutout)
  centre_h, centre_w = _draw_randint(key, n, siamese, (0, 0),
                                     (h + (1 - size_h % 2), w + (1 - size_w % 2)))
  return cutout(x, centre_h, centre_w, (size_h, size_w))


def flip_width(x: jax.Array, fire: jax.Array) -> jax.Array:
  """Mirrors the images whose ``fire`` (bool, (N,)) is set along the width axis."""
  return jnp.where(jnp.asarray(fire).reshape((-1, 1, 1, 1)), x[:, :, ::-1], x)


def rand_flip(key: jax.Array, x: jax.Array, siamese: bool,
              params: DSAParams) -> jax.Array:
  """DCrepo ``rand_flip``: horizontal flip when U[0, 1) < ``params.prob_flip``."""
  (u,) = _draw_uniform(key, x.shape[0], siamese)
  return flip_width(x, u < params.prob_flip)


# ----------------------------------------------------------------------------------
# Affine warps (scale, rotate): PyTorch affine_grid + grid_sample(bilinear, zeros).
# ----------------------------------------------------------------------------------


def _normalized_coords(size: int, align_corners: bool) -> jax.Array:
  """Output pixel positions in [-1, 1] coordinates, as ``affine_grid`` lays them out."""
  if align_corners:  # -1 and 1 are the centres of the corner pixels.
    return jnp.linspace(-1.0, 1.0, size) if size > 1 else jnp.zeros((1,))
  # -1 and 1 are the outer edges of the corner pixels.
  return (2.0 * jnp.arange(size) + 1.0) / size - 1.0


def _unnormalize(coord: jax.Array, size: int, align_corners: bool) -> jax.Array:
  """Maps [-1, 1] grid coordinates to pixel indices, as ``grid_sample`` does."""
  if align_corners:
    return (coord + 1.0) * 0.5 * (size - 1)
  return ((coord + 1.0) * size - 1.0) * 0.5


def affine_grid(theta: jax.Array, height: int, width: int,
                align_corners: bool) -> jax.Array:
  """Sampling grid of ``torch.nn.functional.affine_grid`` (channels-last output).

  For every output pixel with normalised coordinates (x, y) (x along the width), the
  grid holds ``theta @ [x, y, 1]``: the normalised position to read in the input.

  Args:
    theta: affine matrices, (N, 2, 3).
    height: output height H.
    width: output width W.
    align_corners: the PyTorch convention (see ``DSAParams.align_corners``).

  Returns:
    The grid, (N, H, W, 2), last axis (x, y) as in PyTorch.
  """
  dtype = jnp.result_type(theta.dtype, jnp.float32)
  xs = _normalized_coords(width, align_corners).astype(dtype)  # (W,)
  ys = _normalized_coords(height, align_corners).astype(dtype)  # (H,)
  base = jnp.stack([jnp.broadcast_to(xs[None, :], (height, width)),
                    jnp.broadcast_to(ys[:, None], (height, width)),
                    jnp.ones((height, width), dtype)], axis=-1)  # (H, W, 3)
  return jnp.einsum('hwk,nik->nhwi', base, theta.astype(dtype))


def grid_sample(x: jax.Array, grid: jax.Array, align_corners: bool) -> jax.Array:
  """Bilinear ``grid_sample`` with zero padding, NHWC.

  Each of the four neighbours contributes its bilinear weight if it lies inside the
  image and nothing otherwise, which is PyTorch's ``padding_mode='zeros'``. The reads
  are gathers, so the gradient flows to the images (and to the grid).

  Args:
    x: images, (N, H, W, C).
    grid: normalised (x, y) read positions, (N, Ho, Wo, 2).
    align_corners: the PyTorch convention (see ``DSAParams.align_corners``).

  Returns:
    The resampled images, (N, Ho, Wo, C), in the dtype of ``x``.
  """
  n, h, w, _ = x.shape
  dtype = jnp.result_type(x.dtype, grid.dtype, jnp.float32)
  ix = _unnormalize(grid[..., 0].astype(dtype), w, align_corners)  # (N, Ho, Wo)
  iy = _unnormalize(grid[..., 1].astype(dtype), h, align_corners)
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  fx, fy = ix - x0, iy - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  batch = jnp.arange(n)[:, None, None]
  xd = x.astype(dtype)

  def corner(cy, cx, weight):
    inside = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
    value = xd[batch, jnp.clip(cy, 0, h - 1), jnp.clip(cx, 0, w - 1)]  # (N, Ho, Wo, C)
    return value * jnp.where(inside, weight, 0.0)[..., None]

  out = (corner(y0, x0, (1 - fy) * (1 - fx)) + corner(y0, x0 + 1, (1 - fy) * fx)
         + corner(y0 + 1, x0, fy * (1 - fx)) + corner(y0 + 1, x0 + 1, fy * fx))
  return out.astype(x.dtype)


def affine_warp(x: jax.Array, theta: jax.Array, align_corners: bool = False) -> jax.Array:
  """``grid_sample(x, affine_grid(theta, x.shape))`` in NHWC (bilinear, zero padding).

  Args:
    x: images, (N, H, W, C).
    theta: output-to-input affine maps in normalised coordinates, (N, 2, 3).
    align_corners: the PyTorch convention (see ``DSAParams.align_corners``).

  Returns:
    The warped images, (N, H, W, C).
  """
  _, h, w, _ = x.shape
  return grid_sample(x, affine_grid(theta, h, w, align_corners), align_corners)


def scale_theta(sx: jax.Array, sy: jax.Array) -> jax.Array:
  """``[[sx, 0, 0], [0, sy, 0]]`` per sample, (N, 2, 3); s > 1 shrinks the content."""
  zeros = jnp.zeros_like(sx)
  return jnp.stack([jnp.stack([sx, zeros, zeros], -1),
                    jnp.stack([zeros, sy, zeros], -1)], axis=-2)


def rotation_theta(angle: jax.Array) -> jax.Array:
  """``[[cos, -sin, 0], [sin, cos, 0]]`` per sample (radians), (N, 2, 3), as DCrepo.

  In image coordinates (y pointing down) a positive angle turns the content
  counter-clockwise on screen; 90° equals ``np.rot90`` over the (H, W) axes.
  """
  cos, sin, zeros = jnp.cos(angle), jnp.sin(angle), jnp.zeros_like(angle)
  return jnp.stack([jnp.stack([cos, -sin, zeros], -1),
                    jnp.stack([sin, cos, zeros], -1)], axis=-2)


def rand_scale(key: jax.Array, x: jax.Array, siamese: bool,
               params: DSAParams) -> jax.Array:
  """DCrepo ``rand_scale``: sx, sy ~ U[1/r, r] independently, r = ``ratio_scale``."""
  n = x.shape[0]
  low, high = 1.0 / params.ratio_scale, params.ratio_scale
  sx, sy = _draw_uniform(key, n, siamese, 2, low, high)
  return affine_warp(x, scale_theta(sx, sy), params.align_corners)


def rand_rotate(key: jax.Array, x: jax.Array, siamese: bool,
                params: DSAParams) -> jax.Array:
  """DCrepo ``rand_rotate``: angle ~ U[-r, r] degrees, r = ``ratio_rotate``."""
  limit = math.radians(params.ratio_rotate)
  (angle,) = _draw_uniform(key, x.shape[0], siamese, 1, -limit, limit)
  return affine_warp(x, rotation_theta(angle), params.align_corners)


# ----------------------------------------------------------------------------------
# Public entry points.
# ----------------------------------------------------------------------------------

_GROUP_FNS: dict[str, Transform] = {
    'color': rand_color,
    'crop': rand_crop,
    'cutout': rand_cutout,
    'flip': rand_flip,
    'scale': rand_scale,
    'rotate': rand_rotate,
}


def _check_images(x: jax.Array) -> None:
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'DSA expects float NHWC images (N, H, W, C); got shape '
                     f'{tuple(x.shape)} and dtype {x.dtype}')


def dsa_group(key: jax.Array, x: jax.Array, group: str, *, siamese: bool = False,
              params: DSAParams = DSAParams()) -> jax.Array:
  """Applies one named DSA group with parameters drawn from ``key``.

  ``dsa(key, x, ...)`` equals ``dsa_group(jax.random.split(key)[1], x, g, ...)`` for
  the group ``g`` it chose.

  Args:
    key: PRNG key.
    x: float images, (N, H, W, C).
    group: one of ``GROUPS``.
    siamese: one transform for the whole batch (independent of N) if True, one per
      sample otherwise.
    params: transform strengths (Python numbers).

  Returns:
    The augmented images, (N, H, W, C), same dtype.

  Raises:
    ConfigError: if ``group`` is unknown.
  """
  if group not in _GROUP_FNS:
    raise ConfigError(f'dsa_strategy group {group!r} is unknown; accepted: '
                      f'{", ".join(GROUPS)}')
  _check_images(x)
  return _apply_groups(key, x, (group,), siamese, params, choose=False)


def dsa(key: jax.Array, x: jax.Array, *, strategy: str = DEFAULT_STRATEGY,
        siamese: bool = False, params: DSAParams = DSAParams(),
        choice_key: jax.Array | None = None) -> jax.Array:
  """Differentiable Siamese Augmentation: one random group of ``strategy`` per call.

  DCrepo ``DiffAugment`` with ``aug_mode='S'``. The group is picked uniformly among the
  strategy's tokens with ``jax.lax.switch`` (under ``vmap`` over keys every branch is
  evaluated and the results selected, which is correct, only slower).

  Args:
    key: PRNG key; the group and every transform parameter derive from it.
    x: float images, (N, H, W, C).
    strategy: groups joined by ``'_'`` (see ``parse_strategy``); static under ``jit``.
    siamese: if True, ONE set of parameters for the whole batch, independent of N, so
      batches of different sizes augmented with the same key get the same transform.
      If False, parameters are drawn per sample (the group is still shared).
    params: transform strengths (Python numbers; static under ``jit``).
    choice_key: if given, the group is chosen from this key and the parameters from
      ``key`` (whole). Under ``vmap`` over ``key`` with an unbatched ``choice_key``,
      the switch index stays unbatched, so only the chosen group is computed instead
      of all six (the evaluation protocol and DM use this).

  Returns:
    The augmented images, (N, H, W, C), same dtype; ``x`` itself for ``'none'``.

  Raises:
    ConfigError: if ``strategy`` names an unknown group.
  """
  groups = parse_strategy(strategy)
  _check_images(x)
  if not groups:
    return x
  return _apply_groups(key, x, groups, siamese, params, choose=True,
                       choice_key=choice_key)


# Jitted so that eager calls (e.g. an evaluation loop written in plain Python) compile
# once per shape instead of dispatching op by op and re-tracing the switch each time;
# inside a user's jit/vmap/grad this is just an inlined call.
@functools.partial(jax.jit, static_argnames=('groups', 'siamese', 'params', 'choose'))
def _apply_groups(key: jax.Array, x: jax.Array, groups: tuple[str, ...], siamese: bool,
                  params: DSAParams, choose: bool,
                  choice_key: jax.Array | None = None) -> jax.Array:
  """Applies ``groups[0]`` with ``key`` or, if ``choose``, a random group of ``groups``.

  When choosing without ``choice_key``, ``key`` is split into (choice, augmentation)
  keys; the augmentation key is what ``dsa_group`` would receive.
  """
  if not choose:
    return _GROUP_FNS[groups[0]](key, x, siamese, params)
  if choice_key is None:
    choice_key, aug_key = jax.random.split(key)
  else:
    aug_key = key
  if len(groups) == 1:
    return _GROUP_FNS[groups[0]](aug_key, x, siamese, params)
  branches = [functools.partial(_GROUP_FNS[g], siamese=siamese, params=params)
              for g in groups]
  index = jax.random.randint(choice_key, (), 0, len(groups))
  return jax.lax.switch(index, branches, aug_key, x)
