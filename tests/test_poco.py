"""PoCO: the greedy anti-diagonal class placement against enumeration and closed forms."""

import jax
import numpy as np
import pytest

from jaxdd.errors import ConfigError, DataError
from jaxdd.parameterizations.poco import (anti_diagonal_order, class_mean_embeddings,
                               cosine_distances, poco_order, resolve_class_order)
from jaxdd.parameterizations.poster import make_poster


def _cos_distance(a, b):
  return 1.0 - float(np.dot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))


@pytest.mark.parametrize('seed', range(4))
def test_each_cell_is_the_greedy_choice_by_enumeration(seed):
  rows, cols = 3, 3
  emb = np.random.default_rng(seed).normal(size=(9, 5))
  order = poco_order(emb, rows, cols)
  assert sorted(order.ravel().tolist()) == list(range(9))
  # Anti-diagonals r + c = s, each walked from its largest row down.
  cells = [(r, s - r) for s in range(rows + cols - 1)
           for r in range(rows - 1, -1, -1) if 0 <= s - r < cols]
  placed = {}
  for r, c in cells:
    used = set(placed.values())
    if not placed:
      want = 0                           # the authors' first cell: the first class
    else:
      neighbours = [placed[n] for n in ((r - 1, c), (r, c - 1)) if n in placed]
      best, want = np.inf, None
      for cand in range(9):              # enumerate every unused class
        if cand in used:
          continue
        cost = sum(_cos_distance(emb[m], emb[cand]) for m in neighbours)
        if cost < best - 1e-12:
          best, want = cost, cand
    assert order[r, c] == want, (r, c)
    placed[(r, c)] = want


def test_a_row_follows_the_nearest_neighbour_chain():
  # Classes on a quarter circle, shuffled: in one row every cell has one placed
  # neighbour (its left), so the greedy row walks the circle from class 0's angle.
  perm = np.array([0, 4, 1, 5, 2, 3])           # class perm[i] sits at angle i
  angles = np.empty(6)
  angles[perm] = np.linspace(0, np.pi / 2, 6)
  emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  np.testing.assert_array_equal(poco_order(emb, 1, 6)[0], perm)


def test_ties_go_to_the_lowest_index_in_anti_diagonal_order():
  order = poco_order(np.ones((6, 3)), 2, 3)
  # Cells in order (0,0) (1,0) (0,1) (1,1) (0,2) (1,2) take classes 0..5.
  np.testing.assert_array_equal(order, [[0, 2, 4], [1, 3, 5]])
  assert anti_diagonal_order(2, 3) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]


def test_cosine_distances_match_a_loop():
  emb = np.random.default_rng(0).normal(size=(4, 7))
  d = cosine_distances(emb)
  for i in range(4):
    for j in range(4):
      assert d[i, j] == pytest.approx(_cos_distance(emb[i], emb[j]), abs=1e-12)


def test_class_mean_embeddings_match_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(10, 4, 4, 2)).astype(np.float32)
  y = np.array([0, 2, 1, 2, 0, 1, 1, 2, 0, 0])
  got = np.asarray(class_mean_embeddings(x, y, 3))
  want = np.stack([x[y == k].reshape(-1, 32).mean(0) for k in range(3)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  feats = lambda v: v.mean(axis=(1, 2))      # a feature function [n, H, W, C] -> [n, C]
  got = np.asarray(class_mean_embeddings(x, y, 3, feature_fn=feats))
  want = np.stack([x[y == k].mean(axis=(1, 2)).mean(0) for k in range(3)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(DataError, match='empty'):
    class_mean_embeddings(x, y, 4)


def test_grid_must_hold_every_class():
  with pytest.raises(ConfigError, match=r'parameterization\.grid'):
    poco_order(np.ones((6, 2)), 2, 2)


def test_the_order_drives_the_poster_labels():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 8, 8, 1)).astype(np.float32)
  y = np.repeat(np.arange(4), 10)
  order = poco_order(class_mean_embeddings(x, y, 4), 2, 2)
  p = make_poster(num_classes=4, image_shape=(8, 8, 1), ipc=1.0, class_order=order)
  labels = np.asarray(p.decode(p.init(jax.random.key(0), None)).labels)
  # The first patch (top-left) and the last (bottom-right) belong to the corner classes.
  assert np.argmax(labels[0]) == order[0, 0] and np.argmax(labels[-1]) == order[1, 1]


def _tiny_dataset(n=6, seed=0):
  """4 classes whose images point along e0, e5, e10 and e0 + 0.3·e1: 3 is 0's neighbour."""
  from jaxdd.data import Dataset
  rng = np.random.default_rng(seed)
  dirs = np.zeros((4, 16), np.float32)
  dirs[0, 0] = dirs[1, 5] = dirs[2, 10] = dirs[3, 0] = 1.0
  dirs[3, 1] = 0.3
  y = np.repeat(np.arange(4), n).astype(np.int32)
  x = (dirs[y] + 0.01 * rng.normal(size=(4 * n, 16))).reshape(-1, 4, 4, 1)
  x = x.astype(np.float32)
  return Dataset('tiny', x, y, x, y, 4, tuple(f'c{i}' for i in range(4)),
                 np.zeros(1, np.float32), np.ones(1, np.float32), None)


def test_resolve_class_order_from_pixels_is_poco_on_class_means():
  ds = _tiny_dataset()
  got = resolve_class_order('poco_pixels', ds, (2, 2))
  means = np.stack([ds.x_train[ds.y_train == c].reshape(6, -1).mean(0) for c in range(4)])
  np.testing.assert_array_equal(got, poco_order(means, 2, 2))


def test_resolve_class_order_passes_grids_and_refuses_unknown_names():
  ds = _tiny_dataset()
  assert resolve_class_order('', ds, (2, 2)) is None
  assert resolve_class_order(None, ds, (2, 2)) is None
  grid = np.array([[3, 2], [1, 0]])
  assert resolve_class_order(grid, ds, (2, 2)) is grid
  with pytest.raises(ConfigError, match='poco_text, poco_pixels'):
    resolve_class_order('clip', ds, (2, 2))


def test_config_class_order_reaches_the_poster():
  import ml_collections
  from jaxdd import registry
  ds = _tiny_dataset()
  config = ml_collections.ConfigDict(dict(ipc=1, parameterization=dict(
      name='poster', init='tiles', learn_labels=False, class_order='poco_pixels')))
  param = registry.get_parameterization(config, 4, (4, 4, 1), ds)
  means = np.stack([ds.x_train[ds.y_train == c].reshape(6, -1).mean(0) for c in range(4)])
  order = poco_order(means, 2, 2)
  assert order[0, 1] == 3 or order[1, 0] == 3        # class 3 placed beside class 0
  labels = lambda p: np.asarray(p.decode(p.init(jax.random.key(0), None)).labels)
  direct = make_poster(num_classes=4, image_shape=(4, 4, 1), ipc=1, class_order=order)
  row_major = make_poster(num_classes=4, image_shape=(4, 4, 1), ipc=1)
  np.testing.assert_array_equal(labels(param), labels(direct))
  assert not np.array_equal(labels(param), labels(row_major))
