"""PoDD poster: patches, gradients, the paper's CIFAR-10 geometry, PoDDL labels, budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd.errors import ConfigError
from jaxdd.interfaces import Parameterization
from jaxdd.parameterizations import poster as poster_lib
from jaxdd.parameterizations import poster_geometry as geometry_lib
from jaxdd.parameterizations.poster import make_poster
from jaxdd.parameterizations.poster import poster_geometry
from jaxdd.parameterizations.poster import poster_project


def _constant_sampler(values, shape):
  """A ``sample_real`` whose image of class k is the constant ``values[k]``."""
  def sample_real(m):
    assert m == 1
    images = np.stack([np.full(shape, v, np.float32) for v in values])
    return images, np.arange(len(values), dtype=np.int32)
  return sample_real


def _slow_crops(poster, image_hw, patches):
  """The patches by an explicit double loop, positions from the paper's formula."""
  (h, w), (n_x, n_y) = image_hw, patches
  hp, wp = poster.shape[:2]
  ys = [int(v) for v in np.round(np.linspace(0, hp - h, n_y))]
  xs = [int(v) for v in np.round(np.linspace(0, wp - w, n_x))]
  crops = []
  for y in ys:            # row-major: the patch index runs along x first
    for x in xs:
      crops.append(poster[y:y + h, x:x + w])
  return np.stack(crops), ys, xs


# ---------------------------------------------------------------------------------
# Patches and their gradient.
# ---------------------------------------------------------------------------------


def test_patches_equal_a_slow_crop_loop():
  p = make_poster(num_classes=3, image_shape=(8, 8, 2), ipc=0.7, poster_shape=(13, 21),
                  patches=(4, 3), init='noise')
  params = p.init(jax.random.key(0), None)
  syn = p.decode(params)
  want, _, _ = _slow_crops(np.asarray(params['poster']), (8, 8), (4, 3))
  np.testing.assert_array_equal(np.asarray(syn.images), want)
  # The crops reach both corners of the poster.
  np.testing.assert_array_equal(syn.images[-1], params['poster'][5:, 13:])


def test_poster_gradient_is_the_scatter_sum_of_patch_gradients():
  p = make_poster(num_classes=3, image_shape=(8, 8, 2), ipc=0.7, poster_shape=(13, 21),
                  patches=(5, 4), init='noise')
  params = p.init(jax.random.key(1), None)
  weights = np.random.default_rng(0).normal(size=(20, 8, 8, 2)).astype(np.float32)
  grad = jax.grad(lambda q: jnp.sum(weights * p.decode(q).images))(params)['poster']
  want = np.zeros((13, 21, 2))
  _, ys, xs = _slow_crops(np.zeros((13, 21, 2)), (8, 8), (5, 4))
  for i, (y, x) in enumerate((y, x) for y in ys for x in xs):
    want[y:y + 8, x:x + 8] += weights[i]      # overlapping patches add up
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6, atol=1e-6)


def test_the_papers_cifar10_example():
  """CIFAR-10 at 0.9 IPC: 153×60 poster, 5×2 class grid, 16×6 = 96 patches (§5.1, README)."""
  g = poster_geometry(num_classes=10, image_shape=(32, 32, 3), ipc=0.9)
  assert g.poster_hw == (60, 153) and g.grid == (2, 5) and g.patches == (16, 6)
  # Strides ≈ 8.1 px in x and 5.6 px in y (docs/methods.md).
  assert np.mean(np.diff(g.patch_x)) == pytest.approx(121 / 15)
  assert np.mean(np.diff(g.patch_y)) == pytest.approx(28 / 5)
  # The authors' class tiles (class_area 32×32) and learned-label grid for this run.
  assert g.tile_hw == (32, 32)
  np.testing.assert_array_equal(g.tile_x, np.round(np.linspace(0, 121, 5)))
  np.testing.assert_array_equal(g.tile_y, [0, 28])
  assert g.label_hw == (2, 5)
  p = make_poster(num_classes=10, image_shape=(32, 32, 3), ipc=0.9)
  params = p.init(jax.random.key(0), None)
  syn = p.decode(params)
  assert params['poster'].shape == (60, 153, 3)
  assert syn.images.shape == (96, 32, 32, 3) and syn.labels.shape == (96, 10)
  b = p.budget(params)
  assert b.floats == 60 * 153 * 3 and b.ipc == pytest.approx(9180 / 10240)


@pytest.mark.parametrize('total,poster_hw,want', [
    (96, (60, 153), (16, 6)),          # CIFAR-10, README poster 153×60
    (400, (303, 303), (20, 20)),       # CIFAR-100
    (1800, (302, 610), (60, 30)),      # CUB-200
    (800, (608, 1211), (40, 20)),      # Tiny-ImageNet
])
def test_patch_split_gives_the_papers_grids(total, poster_hw, want):
  """§5.1's p = 96 (16×6), 400 (20×20), 1800 (60×30), 800 (40×20) on the README posters."""
  assert geometry_lib.split_patches(total, poster_hw) == want


def test_exact_one_ipc_poster_is_the_tile_grid():
  # B = K·H·W with the grid's aspect: 5×2 tiles of 32×32 side by side, no overlap.
  assert geometry_lib.poster_size(1.0, 10, (32, 32, 3), (2, 5)) == (64, 160)


# ---------------------------------------------------------------------------------
# Initialisation.
# ---------------------------------------------------------------------------------


def test_blend_is_the_product_of_linear_fades():
  """Constant tiles on a 2×2 grid: the poster is the closed-form separable blend."""
  order = np.array([[2, 0], [3, 1]])
  values = np.array([1.0, 2.0, 3.0, 5.0])
  p = make_poster(num_classes=4, image_shape=(8, 8, 1), ipc=1.0, poster_shape=(12, 13),
                  class_order=order, init='real')
  poster = np.asarray(p.init(jax.random.key(0), _constant_sampler(values, (8, 8, 1))
                             )['poster'])[..., 0]
  # Tiles 8 px at x = 0, 5 (overlap 3) and y = 0, 4 (overlap 4): the left/top tile's
  # weight is 1 before the overlap, 1 − linspace(0, 1, overlap) inside, 0 after.
  mx = np.concatenate([np.ones(5), 1 - np.linspace(0, 1, 3), np.zeros(5)])
  my = np.concatenate([np.ones(4), 1 - np.linspace(0, 1, 4), np.zeros(4)])
  v = values[order]
  row_top = mx * v[0, 0] + (1 - mx) * v[0, 1]
  row_bottom = mx * v[1, 0] + (1 - mx) * v[1, 1]
  want = my[:, None] * row_top[None, :] + (1 - my[:, None]) * row_bottom[None, :]
  np.testing.assert_allclose(poster, want, rtol=1e-6)


def test_real_patches_start_each_patch_from_a_real_image_of_its_majority_class():
  """init='real_patches': a distinct real image per patch, placed at the patch and faded.

  Image j of class k is the constant 10·k + j. A 3×2 grid of 4×4 patches on a 2-class
  6×11 poster (x = 0, 4, 7 and y = 0, 2: they overlap along both axes): every pixel
  that a single patch covers equals that patch's image, and every patch gets a
  different image of its majority class.
  """
  def sampler(m):
    images = np.stack([np.full((4, 4, 1), 10.0 * k + j, np.float32)
                       for k in range(2) for j in range(m)])
    return images, np.repeat(np.arange(2), m).astype(np.int32)

  p = make_poster(num_classes=2, image_shape=(4, 4, 1), ipc=1.0, poster_shape=(6, 11),
                  grid=(1, 2), patches=(3, 2), init='real_patches')
  geom = poster_geometry(num_classes=2, image_shape=(4, 4, 1), ipc=1.0,
                         poster_shape=(6, 11), grid=(1, 2), patches=(3, 2))
  poster = np.asarray(p.init(jax.random.key(0), sampler)['poster'])[..., 0]
  majority = np.argmax(poster_lib.fixed_patch_labels(geom, (4, 4), 'majority'), axis=1)
  cover = np.zeros((6, 11), int)
  for y in geom.patch_y:
    for x in geom.patch_x:
      cover[y:y + 4, x:x + 4] += 1
  assert cover.max() > 1                             # the patches do overlap
  seen = []
  for i, y in enumerate(geom.patch_y):
    for j, x in enumerate(geom.patch_x):
      sole = cover[y:y + 4, x:x + 4] == 1
      assert sole.any()
      values = poster[y:y + 4, x:x + 4][sole]
      np.testing.assert_allclose(values, values[0])
      k = int(majority[i * 3 + j])
      assert 10 * k <= values[0] < 10 * k + 10      # an image of the majority class
      seen.append(values[0])
  assert len(set(seen)) == 6                         # every patch its own image


def test_gaussian_tiles_have_unit_norm():
  tiles = poster_lib.gaussian_tiles(jax.random.key(0), 5, (4, 4, 3))
  assert tiles.shape == (5, 4, 4, 3)
  norms = np.linalg.norm(np.asarray(tiles).reshape(5, -1), axis=1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
  # σ = min distance / 4 ≈ √(2d)/4 dwarfs the unit-variance mean, so distinct tiles are
  # nearly orthogonal: |cos| is far from 1.
  cos = np.asarray(tiles).reshape(5, -1) @ np.asarray(tiles).reshape(5, -1).T
  assert np.max(np.abs(cos - np.eye(5))) < 0.9


# ---------------------------------------------------------------------------------
# Labels.
# ---------------------------------------------------------------------------------


def _slow_counts(g, image_hw, k):
  """Pixel-by-pixel: how many of each patch's pixels lie in each class tile."""
  (h, w), (th, tw) = image_hw, g.tile_hw
  counts = []
  for py in g.patch_y:
    for px in g.patch_x:
      c = np.zeros(k)
      for y in range(py, py + h):
        for x in range(px, px + w):
          for r, ty in enumerate(g.tile_y):
            for col, tx in enumerate(g.tile_x):
              if ty <= y < ty + th and tx <= x < tx + tw:
                c[g.class_order[r, col]] += 1
      counts.append(c)
  return np.array(counts)


@pytest.mark.parametrize('kind', ['shares', 'softmax'])
def test_fixed_labels_equal_a_slow_pixel_count(kind):
  order = np.array([[2, 0], [3, 1]])
  kw = dict(num_classes=4, image_shape=(8, 8, 1), ipc=0.8, class_order=order)
  p = make_poster(fixed_labels=kind, **kw)
  g = poster_geometry(**kw)
  labels = np.asarray(p.decode(p.init(jax.random.key(0), None)).labels)
  counts = _slow_counts(g, (8, 8), 4)
  if kind == 'shares':
    want = counts / counts.sum(1, keepdims=True)
  else:
    want = np.exp(counts - counts.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
  np.testing.assert_allclose(labels, want, rtol=1e-6, atol=1e-7)
  # The top-left patch is mostly the class at grid cell (0, 0).
  assert np.argmax(labels[0]) == 2


@pytest.mark.parametrize('ipc, order', [(0.8, [[2, 0], [3, 1]]), (1.0, [[1, 0, 2]])])
def test_majority_labels_equal_a_slow_vote_on_the_upsampled_class_matrix(ipc, order):
  """The paper's fixed PoDDL labels: upsample O to the poster pixel by pixel, count each
  patch's pixels per class, one-hot on the majority, ties shared equally."""
  order = np.array(order)
  k = order.size
  kw = dict(num_classes=k, image_shape=(8, 8, 1), ipc=ipc, class_order=order)
  p = make_poster(**kw)   # the default fixed labels are the paper's
  g = poster_geometry(**kw)
  labels = np.asarray(p.decode(p.init(jax.random.key(0), None)).labels)
  (hp, wp), (rows, cols) = g.poster_hw, g.grid
  want, straddling = [], 0
  for py in g.patch_y:
    for px in g.patch_x:
      votes = np.zeros(k)
      for y in range(py, py + 8):
        for x in range(px, px + 8):
          votes[order[y * rows // hp, x * cols // wp]] += 1
      top = votes == votes.max()
      straddling += (votes > 0).sum() > 1
      want.append(top / top.sum())
  np.testing.assert_allclose(labels, np.array(want), rtol=1e-6)
  assert straddling > 0   # the vote decides something: some patches cover two classes


def _slow_pooled(label_map, g, image_hw, pool):
  (h, w), (hp, wp) = image_hw, g.poster_hw
  lh, lw = label_map.shape[:2]
  out = []
  if pool == 'area':     # nearest-upsample the map to the poster, average each window
    up = np.zeros((hp, wp, label_map.shape[-1]))
    for y in range(hp):
      for x in range(wp):
        up[y, x] = label_map[int(np.floor(y * lh / hp)), int(np.floor(x * lw / wp))]
    for py in g.patch_y:
      for px in g.patch_x:
        out.append(up[py:py + h, px:px + w].mean(axis=(0, 1)))
  else:                  # the authors' crop of the map at the down-scaled position
    ch, cw = max(1, int(h * lh / hp)), max(1, int(w * lw / wp))
    n_x, n_y = g.patches
    for cy in np.round(np.linspace(0, lh - ch, n_y)).astype(int):
      for cx in np.round(np.linspace(0, lw - cw, n_x)).astype(int):
        out.append(label_map[cy:cy + ch, cx:cx + cw].sum(axis=(0, 1)))
  out = np.array(out)
  return out / out.sum(1, keepdims=True)


@pytest.mark.parametrize('pool', ['crop', 'area'])
def test_learned_labels_are_distributions_pooled_from_the_map(pool):
  kw = dict(num_classes=4, image_shape=(8, 8, 1), ipc=1.0, poster_shape=(16, 20),
            label_cells=24)
  p = make_poster(learn_labels=True, label_pool=pool, **kw)
  g = poster_geometry(**kw)
  params = p.init(jax.random.key(0), None)
  assert params['labels'].shape == g.label_hw + (4,)
  syn = p.decode(params)
  assert np.all(np.asarray(syn.labels) >= 0)
  np.testing.assert_allclose(np.asarray(syn.labels).sum(1), 1.0, rtol=1e-6)
  # A random non-negative map, against the slow pooling.
  label_map = np.random.default_rng(0).uniform(size=params['labels'].shape)
  got = p.decode({**params, 'labels': jnp.asarray(label_map, jnp.float32)}).labels
  np.testing.assert_allclose(np.asarray(got), _slow_pooled(label_map, g, (8, 8), pool),
                             rtol=1e-5)


def test_label_map_init_is_one_hot_per_class_region():
  order = np.array([[4, 1, 5], [0, 3, 2]])
  p = make_poster(num_classes=6, image_shape=(8, 8, 1), ipc=2.0, class_order=order,
                  learn_labels=True)
  m = np.asarray(p.init(jax.random.key(0), None)['labels'])
  assert m.shape[0] * m.shape[1] <= 12 and m.shape[0] >= 2 and m.shape[1] >= 3
  np.testing.assert_array_equal(m.sum(-1), 1.0)               # one-hot cells
  boxes = {}
  for k in range(6):
    ys, xs = np.nonzero(m[..., k])
    assert ys.size > 0                                         # every class has cells
    assert ys.size == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # a block
    boxes[k] = (ys.min(), ys.max(), xs.min(), xs.max())
  for r in range(2):     # the blocks sit where the class grid says
    for c in range(3):
      if c + 1 < 3:
        assert boxes[order[r, c]][3] < boxes[order[r, c + 1]][2]
      if r + 1 < 2:
        assert boxes[order[r, c]][1] < boxes[order[r + 1, c]][0]


def test_label_gradient_matches_finite_differences():
  p = make_poster(num_classes=3, image_shape=(8, 8, 1), ipc=1.0, learn_labels=True,
                  label_pool='area', label_cells=9)
  params = p.init(jax.random.key(0), None)
  rng = np.random.default_rng(1)
  label_map = jnp.asarray(rng.uniform(0.5, 1.5, size=params['labels'].shape), jnp.float32)
  v = jnp.asarray(rng.normal(size=p.decode(params).labels.shape), jnp.float32)
  f = jax.jit(lambda lm: jnp.sum(v * p.decode({**params, 'labels': lm}).labels))
  grad = np.asarray(jax.grad(f)(label_map))
  eps = 1e-2
  lh, lw, _ = label_map.shape
  for idx in [(0, 0, 0), (lh - 1, lw // 2, 1), (lh // 2, lw - 1, 2)]:
    e = np.zeros(label_map.shape, np.float32)
    e[idx] = eps
    fd = (f(label_map + e) - f(label_map - e)) / (2 * eps)
    assert float(fd) == pytest.approx(grad[idx], rel=2e-2, abs=1e-4)


# ---------------------------------------------------------------------------------
# Budget, projection, shapes, bad configurations.
# ---------------------------------------------------------------------------------


def test_budget_counts_the_poster_and_the_label_map():
  p = make_poster(num_classes=3, image_shape=(8, 8, 2), ipc=0.5, learn_labels=True)
  params = p.init(jax.random.key(0), None)
  hp, wp = params['poster'].shape[:2]
  lh, lw = params['labels'].shape[:2]
  b = p.budget(params)
  assert b.detail == {'poster': hp * wp * 2, 'labels': lh * lw * 3}
  assert b.floats == hp * wp * 2 + lh * lw * 3
  assert b.ipc == pytest.approx(hp * wp / (3 * 8 * 8))
  assert b.ipc <= 0.5 and b.ipc > 0.5 * 0.9


def test_project_clamps_the_label_map_only():
  poster = jnp.asarray([[[-1.0], [2.0]]])
  labels = jnp.asarray([[[-0.5, 0.2], [0.3, -0.1]]])
  out = poster_project({'poster': poster, 'labels': labels})
  np.testing.assert_array_equal(out['poster'], poster)
  np.testing.assert_array_equal(out['labels'],
                                np.array([[[0.0, 0.2], [0.3, 0.0]]], np.float32))
  assert poster_project({'poster': poster})['poster'] is poster
  p = make_poster(num_classes=3, image_shape=(8, 8, 1), ipc=0.5)
  if 'project' in Parameterization._fields:
    assert p.project is poster_project


@pytest.mark.parametrize('k,shape,ipc', [(3, (8, 8, 1), 0.5), (2, (28, 28, 1), 0.7),
                                         (3, (32, 32, 3), 1.0)])
@pytest.mark.parametrize('learn', [False, True])
def test_decode_of_init_has_the_patch_shapes(k, shape, ipc, learn):
  p = make_poster(num_classes=k, image_shape=shape, ipc=ipc, learn_labels=learn)
  g = poster_geometry(num_classes=k, image_shape=shape, ipc=ipc)
  params = p.init(jax.random.key(0), None)
  syn = jax.jit(p.decode)(params)
  n = g.patches[0] * g.patches[1]
  assert syn.images.shape == (n,) + shape and syn.labels.shape == (n, k)
  assert np.all(np.isfinite(syn.images)) and syn.extras == {}
  np.testing.assert_allclose(np.asarray(syn.labels).sum(1), 1.0, rtol=1e-6)
  assert p.budget(params).ipc <= ipc + 1e-9


@pytest.mark.parametrize('kwargs,field', [
    (dict(ipc=0), 'ipc'),
    (dict(num_classes=1, grid=(1, 1)), 'num_classes'),
    (dict(ipc=0.1), 'ipc'),                                 # less than one image
    (dict(grid=(2, 2)), 'parameterization.grid'),
    (dict(class_order=[[0, 1, 1]]), 'parameterization.class_order'),
    (dict(patches=(40, 2)), 'parameterization.patches'),
    (dict(poster_shape=(4, 30)), 'parameterization.poster_shape'),
    (dict(label_cells=2), 'parameterization.label_cells'),
    (dict(init='zeros'), 'parameterization.init'),
    (dict(fixed_labels='plurality'), 'parameterization.fixed_labels'),
    (dict(label_pool='max'), 'parameterization.label_pool'),
])
def test_bad_configuration_raises_config_error(kwargs, field):
  args = dict(num_classes=3, image_shape=(8, 8, 1), ipc=0.5) | kwargs
  with pytest.raises(ConfigError, match=field.replace('.', r'\.')):
    make_poster(**args)
