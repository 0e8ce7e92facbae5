"""Class-balanced sampling on device (inside jit) and real-image initialisation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import data as data_lib
from jaxdd.errors import ConfigError, DataError

# Unequal, shuffled classes: 3, 10 and 25 examples.
LABELS = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [3, 10, 25]))
COUNTS = np.bincount(LABELS)


@functools.partial(jax.jit, static_argnums=2)
def sample(key, index, per_class):
  return data_lib.sample_class_balanced(key, index, per_class)


def test_build_class_index():
  index = data_lib.build_class_index(LABELS, 3)
  table, counts = np.asarray(index.table), np.asarray(index.counts)
  assert table.shape == (3, 25) and table.dtype == np.int32
  np.testing.assert_array_equal(counts, COUNTS)
  for c in range(3):
    np.testing.assert_array_equal(np.sort(table[c, :counts[c]]), np.flatnonzero(LABELS == c))
    assert (LABELS[table[c]] == c).all()       # the padding repeats valid indices too
  with pytest.raises(DataError, match=r'class\(es\) \[3\] have no examples'):
    data_lib.build_class_index(LABELS, 4)


@pytest.mark.parametrize('make_key', [jax.random.key, jax.random.PRNGKey])
def test_sample_without_replacement_when_counts_allow(make_key):
  index = data_lib.build_class_index(LABELS, 3)
  for seed in range(20):
    idx = np.asarray(sample(make_key(seed), index, 3))
    assert idx.shape == (3, 3) and idx.dtype == np.int32
    for c in range(3):
      assert (LABELS[idx[c]] == c).all()
      assert len(set(idx[c].tolist())) == 3
  # The whole of class 0 (3 examples) is drawn every time.
  np.testing.assert_array_equal(np.sort(idx[0]), np.flatnonzero(LABELS == 0))


def test_sample_with_replacement_for_small_classes():
  index = data_lib.build_class_index(LABELS, 3)
  for per_class in (5, 40):          # 40 > every class, and > the table width
    idx = np.asarray(sample(jax.random.key(1), index, per_class))
    assert idx.shape == (3, per_class)
    for c in range(3):
      assert (LABELS[idx[c]] == c).all()
    if per_class == 5:               # classes 1 and 2 still have enough
      assert len(set(idx[1].tolist())) == 5 and len(set(idx[2].tolist())) == 5


def test_sample_covers_classes_uniformly():
  index = data_lib.build_class_index(LABELS, 3)
  keys = jax.random.split(jax.random.key(0), 3000)
  draws = np.asarray(jax.jit(jax.vmap(
      lambda k: data_lib.sample_class_balanced(k, index, 2)))(keys))   # [3000, 3, 2]
  for c, per_class in ((1, 2), (2, 2), (0, 2)):
    hits = np.bincount(draws[:, c].ravel(), minlength=len(LABELS))[LABELS == c]
    expected = 3000 * per_class / COUNTS[c]
    # Binomial sd is < 25 for these counts; 5 sd of slack.
    np.testing.assert_allclose(hits, expected, atol=5 * np.sqrt(expected))
  # Different keys, different draws.
  assert len({d.tobytes() for d in draws[:100]}) > 90


def test_sample_does_not_retrace_across_keys():
  index = data_lib.build_class_index(LABELS, 3)
  traces = []

  @jax.jit
  def step(key):
    traces.append(1)
    return data_lib.sample_class_balanced(key, index, 4)

  a, b = step(jax.random.key(0)), step(jax.random.key(1))
  assert len(traces) == 1 and not np.array_equal(a, b)


# ---- select_real_init -------------------------------------------------------------


def images_of(labels):
  """Images whose single pixel is their own index, so picks can be traced back."""
  return np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)


def test_select_real_init_is_class_major_and_deterministic():
  x = images_of(LABELS)
  images, labels = data_lib.select_real_init(7, x, LABELS, 3, 3)
  assert images.shape == (9, 1, 1, 1) and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
  picked = images.ravel().astype(int)
  np.testing.assert_array_equal(LABELS[picked], labels)
  for c in range(3):
    assert len(set(picked[labels == c].tolist())) == 3
  again, _ = data_lib.select_real_init(7, x, LABELS, 3, 3)
  np.testing.assert_array_equal(images, again)
  others = {data_lib.select_real_init(s, x, LABELS, 3, 3)[0].tobytes() for s in range(10)}
  assert len(others) > 1


def test_select_real_init_accepts_jax_keys():
  x = images_of(LABELS)
  a, _ = data_lib.select_real_init(jax.random.key(3), x, LABELS, 3, 2)
  b, _ = data_lib.select_real_init(jax.random.key(3), x, LABELS, 3, 2)
  c, _ = data_lib.select_real_init(jax.random.PRNGKey(3), x, LABELS, 3, 2)
  np.testing.assert_array_equal(a, b)
  assert LABELS[c.ravel().astype(int)].tolist() == [0, 0, 1, 1, 2, 2]


def test_select_real_init_errors():
  x = images_of(LABELS)
  with pytest.raises(DataError, match=r"'tiny': class 0 has 3 images, fewer than the 4"):
    data_lib.select_real_init(0, x, LABELS, 3, 4, name='tiny')
  with pytest.raises(ConfigError, match='positive integer, got 0'):
    data_lib.select_real_init(0, x, LABELS, 3, 0)
  with pytest.raises(DataError, match='class 3 has 0 images'):
    data_lib.select_real_init(0, x, jnp.asarray(LABELS), 4, 1)
