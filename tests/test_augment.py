"""Tests for jaxdd.augment.dsa (DSA).

The reference checks are independent of the implementation: numpy rolls, np.rot90, a
loop-based bilinear sampler written from PyTorch's documented grid_sample formula, and
DCrepo's clamped-index cutout.
"""

import itertools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from jaxdd.augment import dsa as A
from jaxdd.errors import ConfigError

GROUPS = A.GROUPS
N = 6  # One batch shape (N, 8, 8, 3) plus a (2, 8, 8, 3) sub-batch keep compiles few.


# dsa and dsa_group are jitted internally; the explicit transforms are jitted here so
# that each test compiles once instead of dispatching (and compiling) op by op.
_translate = jax.jit(A.translate)
_cutout = jax.jit(A.cutout, static_argnames='size')
_flip_width = jax.jit(A.flip_width)
_warp = jax.jit(A.affine_warp, static_argnames='align_corners')
_brightness = jax.jit(A.adjust_brightness)
_saturation = jax.jit(A.adjust_saturation)
_contrast = jax.jit(A.adjust_contrast)


def _group(key, x, *, group, siamese):
  return A.dsa_group(key, x, group, siamese=siamese)


def _images(n, h=8, w=8, c=3, seed=0):
  # numpy, not jax.random: one XLA compile less per shape.
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)


def _keys(count, seed=100):
  return [jax.random.key(seed + i) for i in range(count)]


def _copies(n, h=8, w=8, c=3):
  return jnp.tile(_images(1, h, w, c), (n, 1, 1, 1))


# ----------------------------------------------------------------------------------
# parse_strategy / input validation.
# ----------------------------------------------------------------------------------


def test_parse_strategy_accepts_groups_and_none():
  assert A.parse_strategy(A.DEFAULT_STRATEGY) == GROUPS
  assert A.parse_strategy('crop_flip') == ('crop', 'flip')
  assert A.parse_strategy('crop_crop') == ('crop', 'crop')  # Weighting, as in DCrepo.
  for none in ('none', 'None', ''):
    assert A.parse_strategy(none) == ()


@pytest.mark.parametrize('bad', ['colour', 'crop_blur', 'crop__flip', 'crop-flip', None])
def test_parse_strategy_rejects_unknown(bad):
  with pytest.raises(ConfigError) as err:
    A.parse_strategy(bad)
  assert 'dsa_strategy' in str(err.value)
  for group in GROUPS:
    assert group in str(err.value)


def test_dsa_rejects_bad_strategy_group_and_images():
  x = _images(2)
  with pytest.raises(ConfigError, match='dsa_strategy'):
    A.dsa(jax.random.key(0), x, strategy='crop_zoom')
  with pytest.raises(ConfigError, match='dsa_strategy'):
    A.dsa_group(jax.random.key(0), x, 'zoom')
  with pytest.raises(ValueError, match='NHWC'):
    A.dsa(jax.random.key(0), x[0])


def test_none_strategy_is_identity():
  x = _images(3)
  assert A.dsa(jax.random.key(0), x, strategy='none') is x


# ----------------------------------------------------------------------------------
# Siamese / per-sample semantics, for every group.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('group', GROUPS)
def test_siamese_same_transform_for_every_sample(group):
  x = _copies(N)
  for key in _keys(4):
    out = np.asarray(_group(key, x, group=group, siamese=True))
    np.testing.assert_allclose(out, np.broadcast_to(out[:1], out.shape), atol=1e-6)


@pytest.mark.parametrize('group', GROUPS)
def test_siamese_independent_of_batch_size(group):
  big = _images(N)
  for key in _keys(4):
    out_big = _group(key, big, group=group, siamese=True)
    out_small = _group(key, big[:2], group=group, siamese=True)
    np.testing.assert_allclose(out_big[:2], out_small, atol=1e-6)


@pytest.mark.parametrize('group', GROUPS)
def test_different_keys_give_different_transforms(group):
  x = _images(N)
  outs = [np.asarray(_group(k, x, group=group, siamese=True)) for k in _keys(6)]
  distinct = {o.round(5).tobytes() for o in outs}
  assert len(distinct) > 1


@pytest.mark.parametrize('group', GROUPS)
def test_per_sample_mode_varies_across_batch(group):
  x = _copies(N)
  out = np.asarray(_group(jax.random.key(3), x, group=group, siamese=False))
  assert not np.allclose(out, out[:1], atol=1e-6)


def test_dsa_siamese_real_and_synthetic_batches_match():
  """The DM/DC usage: one key for a real batch and a smaller synthetic batch."""
  real = _images(N, seed=1)
  syn = real[:2]
  for key in _keys(12):
    np.testing.assert_allclose(A.dsa(key, real, siamese=True)[:2],
                               A.dsa(key, syn, siamese=True), atol=1e-6)


@pytest.mark.parametrize('siamese', [True, False])
def test_dsa_applies_one_group_per_call_and_covers_all(siamese):
  """dsa(key) equals dsa_group(split(key)[1], g) for one g; all groups get chosen."""
  x = _images(N)
  chosen = set()
  for key in _keys(40):
    out = A.dsa(key, x, siamese=siamese)
    aug_key = jax.random.split(key)[1]
    matches = {g for g in GROUPS
               if np.allclose(out, _group(aug_key, x, group=g, siamese=siamese), atol=1e-6)}
    assert matches, 'output is not one of the groups applied to the whole batch'
    chosen |= matches
  assert chosen == set(GROUPS)


def test_dsa_single_group_strategy():
  x = _images(N)
  key = jax.random.key(5)
  np.testing.assert_allclose(
      A.dsa(key, x, strategy='flip', siamese=True),
      A.dsa_group(jax.random.split(key)[1], x, 'flip', siamese=True))


# ----------------------------------------------------------------------------------
# Independent reference checks: flip, crop, cutout.
# ----------------------------------------------------------------------------------


def test_flip_reference():
  x = _images(N)
  xn = np.asarray(x)
  fired = set()
  for key in _keys(10):
    out = np.asarray(_group(key, x, group='flip', siamese=True))
    if np.array_equal(out, xn[:, :, ::-1]):
      fired.add(True)
    else:
      np.testing.assert_array_equal(out, xn)
      fired.add(False)
  assert fired == {True, False}
  # Per sample: every row is itself or its mirror image.
  out = np.asarray(_group(jax.random.key(1), x, group='flip', siamese=False))
  for o, xi in zip(out, xn):
    assert np.array_equal(o, xi) or np.array_equal(o, xi[:, ::-1])
  np.testing.assert_array_equal(
      _flip_width(x[:3], jnp.array([True, False, True])),
      np.stack([xn[0, :, ::-1], xn[1], xn[2, :, ::-1]]))


def _np_shift(img, sh, sw):
  """out[i, j] = img[i + sh, j + sw], zero outside (np.roll then zero the wrap)."""
  out = np.roll(img, (-sh, -sw), axis=(0, 1))
  h, w = img.shape[:2]
  if sh > 0:
    out[h - sh:] = 0
  elif sh < 0:
    out[:-sh] = 0
  if sw > 0:
    out[:, w - sw:] = 0
  elif sw < 0:
    out[:, :-sw] = 0
  return out


def test_translate_reference():
  x = _images(5, 6, 7)
  xn = np.asarray(x)
  sh, sw = np.array([0, 2, -3, 1, -1]), np.array([0, -2, 1, 7, -6])
  out = np.asarray(_translate(x, jnp.asarray(sh), jnp.asarray(sw)))
  for i in range(5):
    np.testing.assert_array_equal(out[i], _np_shift(xn[i], sh[i], sw[i]))


def test_rand_crop_shifts_within_pad():
  x = _images(N)  # pad = int(8 * 0.125 + 0.5) = 1.
  xn = np.asarray(x)
  seen = set()
  for key in _keys(60):
    out = np.asarray(_group(key, x, group='crop', siamese=True))
    found = [(a, b) for a, b in itertools.product(range(-1, 2), repeat=2)
             if all(np.array_equal(out[i], _np_shift(xn[i], a, b)) for i in range(N))]
    assert found, 'crop output is not a shift within [-pad, pad]'
    seen.add(found[0])
  assert len(seen) == 9  # Every shift in [-1, 1]^2 occurs.


def _np_cutout_dcrepo(img, ch, cw, size):
  """DCrepo's cutout: zero img at clamped indices centre - size//2 + k."""
  out = img.copy()
  h, w = img.shape[:2]
  rows = np.clip(ch - size[0] // 2 + np.arange(size[0]), 0, h - 1)
  cols = np.clip(cw - size[1] // 2 + np.arange(size[1]), 0, w - 1)
  out[np.ix_(rows, cols)] = 0
  return out


def test_cutout_reference():
  x = _images(4, 7, 9)
  xn = np.asarray(x)
  for size in [(4, 4), (3, 5)]:
    ch, cw = np.array([0, 3, 7, 6]), np.array([9, 0, 4, 8])
    out = np.asarray(_cutout(x, jnp.asarray(ch), jnp.asarray(cw), size))
    for i in range(4):
      np.testing.assert_array_equal(out[i], _np_cutout_dcrepo(xn[i], ch[i], cw[i], size))


def test_rand_cutout_matches_dcrepo_range():
  x = _images(N) + 10.0  # No zeros in the input; size 4, centre in [0, 8].
  xn = np.asarray(x)
  centres = set()
  for key in _keys(60):
    out = np.asarray(_group(key, x, group='cutout', siamese=True))
    found = [(a, b) for a, b in itertools.product(range(0, 9), repeat=2)
             if all(np.array_equal(out[i], _np_cutout_dcrepo(xn[i], a, b, (4, 4)))
                    for i in range(N))]
    assert len(found) == 1
    centres.add(found[0])
  coords = {c for pair in centres for c in pair}
  assert min(coords) == 0 and max(coords) == 8


# ----------------------------------------------------------------------------------
# Affine warps.
# ----------------------------------------------------------------------------------


def _np_grid_sample(img, theta, align_corners):
  """Loop reference of affine_grid + grid_sample(bilinear, zeros), one HWC image."""
  h, w, c = img.shape
  out = np.zeros_like(img, dtype=np.float64)
  for i in range(h):
    for j in range(w):
      if align_corners:
        xn = -1 + 2 * j / (w - 1)
        yn = -1 + 2 * i / (h - 1)
      else:
        xn = (2 * j + 1) / w - 1
        yn = (2 * i + 1) / h - 1
      gx, gy = theta @ np.array([xn, yn, 1.0])
      if align_corners:
        px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
      else:
        px, py = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
      x0, y0 = int(np.floor(px)), int(np.floor(py))
      for yy, xx in [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]:
        if 0 <= yy < h and 0 <= xx < w:
          out[i, j] += (1 - abs(px - xx)) * (1 - abs(py - yy)) * img[yy, xx]
  return out


@pytest.mark.parametrize('align_corners', [True, False])
def test_affine_warp_matches_loop_reference(align_corners):
  x = _images(3, 5, 7, 2)
  thetas = np.array([[[1.15, 0, 0], [0, 0.87, 0]],
                     [[0.9, -0.35, 0.1], [0.3, 1.1, -0.2]],
                     [[0.6, 0.2, 0.5], [-0.1, 0.7, 0.4]]])
  out = np.asarray(_warp(x, jnp.asarray(thetas, jnp.float32), align_corners))
  for i in range(3):
    np.testing.assert_allclose(out[i], _np_grid_sample(np.asarray(x[i], np.float64),
                                                       thetas[i], align_corners),
                               atol=1e-5)


@pytest.mark.parametrize('align_corners', [True, False])
def test_identity_theta_and_rot90(align_corners):
  x = _images(2, 6, 6)
  xn = np.asarray(x)
  identity = A.scale_theta(jnp.ones(2), jnp.ones(2))
  np.testing.assert_allclose(_warp(x, identity, align_corners), xn, atol=1e-6)
  for angle, k in [(np.pi / 2, 1), (-np.pi / 2, -1)]:
    out = _warp(x, A.rotation_theta(jnp.full((2,), angle)), align_corners)
    np.testing.assert_allclose(out, np.rot90(xn, k=k, axes=(1, 2)), atol=1e-5)


def test_rand_scale_and_rotate_degenerate_ranges_are_identity():
  x = _images(N)
  flat = A.DSAParams(ratio_scale=1.0, ratio_rotate=0.0)
  for group in ('scale', 'rotate'):
    np.testing.assert_allclose(
        A.dsa_group(jax.random.key(0), x, group, params=flat), x, atol=1e-6)


# ----------------------------------------------------------------------------------
# Colour.
# ----------------------------------------------------------------------------------


def test_color_formulas_reference():
  x = _images(3, 4, 5)
  xn = np.asarray(x, np.float64)
  u = np.array([0.1, 0.5, 0.95])
  ub = u[:, None, None, None]
  np.testing.assert_allclose(_brightness(x, jnp.asarray(u), 1.0),
                             xn + (ub - 0.5), atol=1e-5)
  mean_c = xn.mean(-1, keepdims=True)
  np.testing.assert_allclose(_saturation(x, jnp.asarray(u), 2.0),
                             mean_c + (xn - mean_c) * (ub * 2.0), atol=1e-5)
  mean_all = xn.mean((1, 2, 3), keepdims=True)
  np.testing.assert_allclose(_contrast(x, jnp.asarray(u), 0.5),
                             mean_all + (xn - mean_all) * (ub + 0.5), atol=1e-5)


@pytest.mark.parametrize('siamese', [True, False])
def test_rand_color_parts_draw_in_dcrepo_ranges(siamese):
  x = _images(N)
  xn = np.asarray(x, np.float64)
  p = A.DSAParams()
  key = jax.random.key(7)
  run = lambda fn: np.asarray(jax.jit(fn, static_argnums=(2, 3))(key, x, siamese, p))
  shift = run(A.rand_brightness).astype(np.float64) - xn
  offsets = shift[:, 0, 0, 0]
  np.testing.assert_allclose(shift, np.broadcast_to(offsets[:, None, None, None],
                                                    shift.shape), atol=1e-5)
  assert np.all((offsets >= -0.5) & (offsets < 0.5))
  for fn, axes, (lo, hi) in [(A.rand_saturation, (3,), (0.0, 2.0)),
                             (A.rand_contrast, (1, 2, 3), (0.5, 1.5))]:
    mean = xn.mean(axes, keepdims=True)
    dx, dy = (xn - mean).reshape(N, -1), (run(fn) - mean).reshape(N, -1)
    factor = (dx * dy).sum(1) / (dx * dx).sum(1)  # Least squares, one per sample.
    np.testing.assert_allclose(dy, factor[:, None] * dx, atol=1e-5)
    assert np.all((factor >= lo) & (factor < hi))
    assert (np.ptp(factor) < 1e-6) == siamese


# ----------------------------------------------------------------------------------
# Gradients, jit, vmap, dtypes.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('group', GROUPS)
def test_gradients_flow_to_images(group):
  x = _images(N)
  weights = _images(N, seed=9)
  for siamese in (True, False):
    loss = lambda x, w, k: jnp.sum(w * A.dsa_group(k, x, group, siamese=siamese))
    grad_fn = jax.jit(jax.grad(loss))
    for key in _keys(2):
      for w in (weights, jnp.ones_like(weights)):  # A weighted sum and a plain sum.
        grad = grad_fn(x, w, key)
        assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 0)


def test_translate_gradient_is_kept_pixel_indicator():
  x = _images(1, 5, 5, 1)
  grad = jax.jit(jax.grad(
      lambda x: A.translate(x, jnp.array([2]), jnp.array([-1])).sum()))(x)
  expected = np.zeros((5, 5))
  expected[2:, :4] = 1  # Rows i + 2 and columns j - 1 that land inside the image.
  np.testing.assert_array_equal(grad[0, ..., 0], expected)


def test_explicit_transforms_numerical_gradients():
  x = _images(2, 5, 6, 2)
  theta = jnp.array([[[0.9, -0.3, 0.1], [0.25, 1.1, 0.05]]] * 2)
  for fn in [lambda x: A.affine_warp(x, theta, False),
             lambda x: A.cutout(x, jnp.array([2, 5]), jnp.array([0, 3]), (3, 3))]:
    check_grads(jax.jit(fn), (x,), order=1, modes=('rev',), atol=1e-2, rtol=1e-2)


def test_dsa_under_jit_vmap_and_grad():
  x = _images(N)
  keys = _keys(4)
  # Explicit jit with the configuration static, as a training step would do.
  jitted = jax.jit(A.dsa, static_argnames=('strategy', 'siamese', 'params'))
  for key in keys:
    np.testing.assert_allclose(jitted(key, x, siamese=True), A.dsa(key, x, siamese=True),
                               atol=1e-6)
  # vmap over keys: row i is the transform of key i.
  batched = jax.vmap(lambda k: A.dsa(k, x, siamese=False))(jnp.stack(keys))
  assert batched.shape == (4,) + x.shape
  for i in range(4):
    np.testing.assert_allclose(batched[i], A.dsa(keys[i], x, siamese=False), atol=1e-5)
  # grad through the switch, the key traced.
  grad_fn = jax.jit(jax.grad(lambda x, k: jnp.sum(A.dsa(k, x, siamese=True) ** 2)))
  for key in keys:
    grad = grad_fn(x, key)
    assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 0)


def test_vmap_over_classes_like_dm():
  """Per-class keys and batches under vmap; a class's real and synthetic share its key."""
  real = _images(3 * N).reshape(3, N, 8, 8, 3)
  keys = jax.random.split(jax.random.key(4), 3)
  aug = jax.vmap(lambda k, x: A.dsa(k, x, siamese=True))
  out_real = aug(keys, real)
  for c in range(3):
    np.testing.assert_allclose(out_real[c], A.dsa(keys[c], real[c], siamese=True),
                               atol=1e-5)
    np.testing.assert_allclose(out_real[c, :2], A.dsa(keys[c], real[c, :2], siamese=True),
                               atol=1e-5)


def test_dtype_preserved():
  # Every switch branch must return the input dtype, or lax.switch would not trace.
  x = _images(N).astype(jnp.bfloat16)
  out = jax.eval_shape(lambda k, x: A.dsa(k, x), jax.random.key(0), x)
  assert out.dtype == jnp.bfloat16 and out.shape == x.shape
