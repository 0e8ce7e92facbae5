"""torchvision-style batch augmentation against numpy loops and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.augment import batch as ba


def _np_resized_crop(img, top, left, h, w):
  """torch interpolate(bilinear, align_corners=False) of a crop of img [H, W, C]."""
  size_h, size_w = img.shape[:2]
  out = np.zeros_like(img)
  for i in range(size_h):
    for j in range(size_w):
      sy = min(max((i + 0.5) * h / size_h - 0.5, 0), h - 1)
      sx = min(max((j + 0.5) * w / size_w - 0.5, 0), w - 1)
      y0, x0 = int(np.floor(sy)), int(np.floor(sx))
      y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
      fy, fx = sy - y0, sx - x0
      c = img[top:top + h, left:left + w]
      out[i, j] = ((1 - fy) * (1 - fx) * c[y0, x0] + (1 - fy) * fx * c[y0, x1]
                   + fy * (1 - fx) * c[y1, x0] + fy * fx * c[y1, x1])
  return out


def test_resized_crop_matches_numpy_bilinear():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
  boxes = np.array([[1, 2, 5, 3], [0, 0, 8, 8], [3, 4, 2, 4]])   # top, left, h, w
  got = ba.resized_crop(jnp.asarray(x), *[jnp.asarray(b) for b in boxes.T])
  for n in range(3):
    np.testing.assert_allclose(got[n], _np_resized_crop(x[n], *boxes[n]), rtol=1e-5,
                               atol=1e-6)
  np.testing.assert_allclose(got[1], x[1], atol=1e-6)   # the full box is the identity


def test_resized_crop_with_one_box_crops_every_image_alike():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 8, 6, 1)).astype(np.float32)    # not square: rows != cols
  box = (2, 1, 5, 4)
  got = jax.jit(ba.resized_crop)(jnp.asarray(x), *box)
  for n in range(3):
    np.testing.assert_allclose(got[n], _np_resized_crop(x[n], *box), rtol=1e-5,
                               atol=1e-6)


def test_rrc_boxes_fit_and_fallback():
  top, left, h, w = ba.rrc_boxes(jax.random.key(0), 64, 8, 8, (0.08, 1.0), (3 / 4, 4 / 3))
  top, left, h, w = map(np.asarray, (top, left, h, w))
  assert np.all((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0))
  assert np.all((top + h <= 8) & (left + w <= 8))
  assert len(set(zip(top, left, h, w))) > 10             # boxes vary
  # Aspect 2 never fits a square at full area: torchvision's central fallback crop,
  # w = 8, h = round(8 / 2) = 4, centred.
  box = ba.rrc_boxes(jax.random.key(1), 5, 8, 8, (1.0, 1.0), (2.0, 2.0))
  np.testing.assert_array_equal(np.stack([np.asarray(b) for b in box]),
                                np.array([[2, 0, 4, 8]] * 5).T)
  # One box for a batch: scalars, and the whole image when aspect 1 is allowed.
  box = ba.rrc_boxes(jax.random.key(2), None, 8, 8, (1.0, 1.0), (1.0, 1.0))
  assert all(np.shape(b) == () for b in box)
  assert tuple(int(b) for b in box) == (0, 0, 8, 8)


def _torchvision_get_params(rng, h, w, scale, ratio):
  """torchvision RandomResizedCrop.get_params, line by line with Python's random."""
  area = h * w
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw = int(round(math.sqrt(target * aspect)))
    ch = int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      return rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1), ch, cw
  return 0, 0, h, w          # square image, ratio range holding 1: the whole image


def test_rrc_box_law_matches_torchvision_algorithm():
  """Mean side lengths, crop area and the share of full-height boxes agree with a
  Monte Carlo of torchvision's algorithm (independent random numbers)."""
  n, side, scale, ratio = 4000, 8, (0.08, 1.0), (3 / 4, 4 / 3)
  top, left, h, w = map(np.asarray, ba.rrc_boxes(jax.random.key(3), n, side, side,
                                                 scale, ratio))
  rng = np.random.default_rng(0)
  ref = np.array([_torchvision_get_params(rng, side, side, scale, ratio)
                  for _ in range(n)])
  for got, want in ((h, ref[:, 2]), (w, ref[:, 3]), (h * w, ref[:, 2] * ref[:, 3])):
    se = np.sqrt(got.var() / n + want.var() / n)
    assert abs(got.mean() - want.mean()) < 4 * se, (got.mean(), want.mean())
  assert abs(np.mean(h == side) - np.mean(ref[:, 2] == side)) < 0.04
  # Given the box, the corner is uniform: E[top] = (H - h) / 2.
  assert abs(np.mean(top - (side - h) / 2)) < 0.1
  assert abs(np.mean(left - (side - w) / 2)) < 0.1


def test_pad_crop_is_a_window_of_the_padded_image():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
  out = np.asarray(ba.pad_crop(jax.random.key(0), jnp.asarray(x), 2))
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(4):
    assert any(np.array_equal(out[i], padded[i, a:a + 8, b:b + 8])
               for a in range(5) for b in range(5))
  np.testing.assert_array_equal(ba.pad_crop(jax.random.key(0), jnp.asarray(x), 0), x)


def test_random_flip_per_sample_or_for_the_batch():
  x = np.random.default_rng(2).normal(size=(6, 4, 5, 1)).astype(np.float32)
  mirrored = x[:, :, ::-1]
  mixed, whole = False, set()
  for seed in range(8):
    for per_sample in (True, False):
      out = np.asarray(ba.random_flip(jax.random.key(seed), jnp.asarray(x),
                                      per_sample=per_sample))
      flipped = [np.array_equal(out[n], mirrored[n]) for n in range(6)]
      assert all(f or np.array_equal(out[n], x[n]) for n, f in enumerate(flipped))
      if per_sample:
        mixed |= 0 < sum(flipped) < 6
      else:
        assert sum(flipped) in (0, 6)
        whole.add(flipped[0])
  assert mixed and whole == {False, True}


def test_cutmix_pastes_one_box_from_a_permutation():
  n = 6
  x = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[:, None, None, None], (n, 8, 8, 1))
  for seed in range(5):
    out = np.asarray(ba.cutmix(jax.random.key(seed), x, 1.0))[..., 0]
    donors = out.reshape(n, -1)
    pasted = [set(np.unique(d)) - {i} for i, d in enumerate(donors)]
    assert all(len(p) <= 1 for p in pasted)          # one donor per image
    masks = [out[i] != i for i in range(n) if pasted[i]]
    for mk in masks[1:]:
      np.testing.assert_array_equal(mk, masks[0])      # the same box everywhere
    if masks:
      rows, cols = np.nonzero(masks[0])                # and it is a rectangle
      assert masks[0][rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
      donor_ids = [p.pop() for p in pasted if p]
      assert len(set(donor_ids)) == len(donor_ids)     # donors form a permutation


def test_mixup_is_one_convex_combination_with_a_permutation():
  n = 5
  x = jnp.eye(n, dtype=jnp.float32).reshape(n, 1, 1, n)   # image i = basis vector e_i
  for seed in range(4):
    m = np.asarray(ba.mixup(jax.random.key(seed), x, 0.8), np.float64).reshape(n, n)
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)  # convex rows
    moved = np.diag(m) < 1 - 1e-6                         # rows mixed with another
    if not moved.any():                                   # identity permutation
      np.testing.assert_allclose(m, np.eye(n), atol=1e-6)
      continue
    lam = np.diag(m)[moved][0]
    np.testing.assert_allclose(np.diag(m)[moved], lam, rtol=1e-5)   # one λ
    # M = λ I + (1 − λ) P with P a permutation matrix.
    perm = np.rint((m - lam * np.eye(n)) / (1 - lam))
    np.testing.assert_array_equal(np.sort(np.argmax(perm, 1)), np.arange(n))
    np.testing.assert_allclose(m, lam * np.eye(n) + (1 - lam) * perm, atol=1e-5)


def test_symmetric_beta_moments():
  # Beta(α, α): mean 1/2, variance 1 / (4 (2α + 1)).
  for alpha in (0.8, 2.0):
    lam = np.asarray(jax.vmap(lambda k: ba._symmetric_beta(k, alpha))(
        jax.random.split(jax.random.key(0), 4000)))
    assert np.all((lam >= 0) & (lam <= 1))
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(lam.mean() - 0.5) < 4 * math.sqrt(var / 4000)
    assert abs(lam.var() - var) < 0.15 * var
