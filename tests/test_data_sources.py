"""Sources (digits, npz, tfds), validation and every error path of ``load_dataset``."""

import os
import sys
import types

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxdd import data as data_lib
from jaxdd.errors import ConfigError, DataError

MNIST = '/work/shared/data/mnist.npz'


def write_npz(path, n=40, shape=(6, 5), classes=('a', 'b', 'c', 'd'), seed=0, **overrides):
  """A tiny uint8 data set in the plain layout; every class present in both splits."""
  rng = np.random.default_rng(seed)
  k = len(classes) if classes is not None else 4
  arrays = {
      'x_train': rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8),
      'y_train': np.arange(n) % k,
      'x_test': rng.integers(0, 256, size=(n // 2,) + shape, dtype=np.uint8),
      'y_test': np.arange(n // 2) % k,
  }
  if classes is not None:
    arrays['classes'] = np.asarray(classes)
  arrays.update(overrides)
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return arrays


# ---- digits -----------------------------------------------------------------------


def test_digits_loads_with_fixed_split():
  ds = data_lib.load_dataset('digits')
  assert ds.name == 'digits' and ds.num_classes == 10
  assert ds.class_names == tuple(str(c) for c in range(10))
  assert ds.x_train.shape == (1433, 8, 8, 1) and ds.x_test.shape == (364, 8, 8, 1)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.zca is None and ds.mean.shape == ds.std.shape == (1,)
  # Normalised with statistics of its own train split.
  assert abs(ds.x_train.mean()) < 1e-5 and ds.x_train.std() == pytest.approx(1.0, abs=1e-4)
  again = data_lib.load_dataset('digits')
  for a, b in zip(ds[1:5], again[1:5]):
    np.testing.assert_array_equal(a, b)


def test_digits_split_is_first_80_percent_of_each_class():
  bunch = load_digits()
  train = np.zeros(len(bunch.target), bool)
  for c in range(10):
    idx = np.flatnonzero(bunch.target == c)
    train[idx[:int(0.8 * len(idx))]] = True
  ds = data_lib.load_dataset('digits', normalize=False)
  np.testing.assert_allclose(ds.x_train[..., 0], bunch.images[train] / 16.0, rtol=1e-6)
  np.testing.assert_allclose(ds.x_test[..., 0], bunch.images[~train] / 16.0, rtol=1e-6)
  np.testing.assert_array_equal(ds.y_train, bunch.target[train])
  np.testing.assert_array_equal(ds.y_test, bunch.target[~train])
  np.testing.assert_array_equal(ds.mean, 0.0)
  np.testing.assert_array_equal(ds.std, 1.0)


def test_digits_with_zca():
  raw = data_lib.load_dataset('digits', zca='raw')
  assert isinstance(raw.zca, data_lib.ZCA) and not raw.zca.per_image_normalize
  np.testing.assert_array_equal(raw.mean, 0.0)   # MTT whitens un-normalised pixels
  krr = data_lib.load_dataset('digits', zca='krr')
  assert krr.zca.per_image_normalize and krr.std[0] != 1.0
  assert krr.x_test.shape == (364, 8, 8, 1) and np.isfinite(krr.x_test).all()


# ---- npz --------------------------------------------------------------------------


def test_npz_grayscale_3d_uint8(tmp_path):
  path = tmp_path / 'toy.npz'
  arrays = write_npz(path)
  ds = data_lib.load_dataset(f'npz:{path}', normalize=False)
  assert ds.name == f'npz:{path}'
  assert ds.x_train.shape == (40, 6, 5, 1) and ds.x_test.shape == (20, 6, 5, 1)
  np.testing.assert_allclose(ds.x_train[..., 0], arrays['x_train'] / 255.0, rtol=1e-6)
  assert ds.class_names == ('a', 'b', 'c', 'd') and ds.num_classes == 4
  np.testing.assert_array_equal(ds.y_test, arrays['y_test'])
  # Unknown stem: statistics computed per channel on train.
  ds = data_lib.load_dataset(f'npz:{path}')
  np.testing.assert_allclose(ds.mean, [arrays['x_train'].mean() / 255.0], rtol=1e-5)
  np.testing.assert_allclose(ds.std, [arrays['x_train'].std() / 255.0], rtol=1e-4)


def test_npz_known_stem_uses_published_stats(tmp_path):
  path = tmp_path / 'cifar10.npz'
  write_npz(path, shape=(4, 4, 3))
  ds = data_lib.load_dataset(f'npz:{path}')
  np.testing.assert_allclose(ds.mean, [0.4914, 0.4822, 0.4465])
  np.testing.assert_allclose(ds.std, [0.2023, 0.1994, 0.2010])


def test_npz_float_pixels_and_no_classes(tmp_path):
  path = tmp_path / 'floats.npz'
  rng = np.random.default_rng(1)
  write_npz(path, classes=None, x_train=rng.uniform(size=(40, 3, 3, 2)).astype(np.float32),
            x_test=rng.uniform(size=(20, 3, 3, 2)), y_train=np.arange(40) % 5,
            y_test=np.arange(20) % 3)
  ds = data_lib.load_dataset(f'npz:{path}', normalize=False)
  assert ds.num_classes == 5 and ds.class_names == ('0', '1', '2', '3', '4')
  assert ds.x_test.dtype == np.float32 and ds.x_train.shape == (40, 3, 3, 2)


@pytest.mark.skipif(not os.path.exists(MNIST), reason='shared MNIST file not present')
def test_real_mnist_npz():
  ds = data_lib.load_dataset(f'npz:{MNIST}')
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.num_classes == 10 and ds.class_names[3] == '3'
  np.testing.assert_allclose(ds.mean, [0.1307])
  np.testing.assert_allclose(ds.std, [0.3081])
  assert abs(ds.x_train.mean()) < 1e-3 and ds.x_train.std() == pytest.approx(1.0, abs=1e-3)
  np.testing.assert_array_equal(np.bincount(ds.y_test)[:3], [980, 1135, 1032])


# ---- tfds (not installed here: faked to check the plumbing) ----------------------


def test_tfds_missing_gives_install_hint(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)   # import raises
  with pytest.raises(ConfigError, match=r"'tfds:cifar10'.*pip install jaxdd\[tfds\]"):
    data_lib.load_dataset('tfds:cifar10')


def fake_tfds(calls, n=30, error=None):
  """A stand-in for the few tensorflow_datasets names the loader uses."""
  rng = np.random.default_rng(0)
  split = lambda m: (rng.integers(0, 256, (m, 4, 4, 3), dtype=np.uint8), np.arange(m) % 3)

  def load(name, **kwargs):
    calls.append((name, kwargs))
    if error:
      raise error
    info = types.SimpleNamespace(
        supervised_keys=('image', 'label'),
        features={'label': types.SimpleNamespace(names=['x', 'y', 'z'])})
    return [split(n), split(n // 2)], info

  return types.SimpleNamespace(
      load=load, as_numpy=lambda t: t,
      download=types.SimpleNamespace(DownloadConfig=lambda **kw: ('config', kw)))


def test_tfds_plumbing(monkeypatch):
  calls = []
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', fake_tfds(calls))
  ds = data_lib.load_dataset('tfds:svhn_cropped:3.0.0', data_dir='/d', manual_dir='/m')
  (name, kwargs), = calls
  assert name == 'svhn_cropped:3.0.0'
  assert kwargs['split'] == ['train', 'test'] and kwargs['batch_size'] == -1
  assert kwargs['as_supervised'] and kwargs['with_info'] and kwargs['data_dir'] == '/d'
  assert kwargs['download_and_prepare_kwargs'] == {
      'download_config': ('config', {'manual_dir': '/m'})}
  assert ds.class_names == ('x', 'y', 'z') and ds.x_train.shape == (30, 4, 4, 3)
  np.testing.assert_allclose(ds.mean, [0.4377, 0.4438, 0.4728])   # svhn's table


def test_tfds_load_failure_is_a_data_error(monkeypatch):
  error = ValueError('Dataset nope not found.\nAvailable datasets: ...')
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', fake_tfds([], error=error))
  with pytest.raises(DataError, match=r"'tfds:nope'.*Dataset nope not found\.$"):
    data_lib.load_dataset('tfds:nope')


# ---- errors -----------------------------------------------------------------------


@pytest.mark.parametrize('spec', ['cifar10', 'npz:', 'tfds: ', 'csv:/x.csv', None])
def test_unknown_spec(spec):
  with pytest.raises(ConfigError, match=r'data must be one of digits, npz:PATH or tfds:NAME'):
    data_lib.load_dataset(spec)


def test_bad_zca_value():
  with pytest.raises(ConfigError, match=r"zca must be one of 'none', 'raw', 'krr', got 'pca'"):
    data_lib.load_dataset('digits', zca='pca')


def test_missing_npz_file(tmp_path):
  path = tmp_path / 'absent.npz'
  with pytest.raises(DataError, match=f'no such file {path}'):
    data_lib.load_dataset(f'npz:{path}')


def test_npz_missing_arrays_and_junk(tmp_path):
  path = tmp_path / 'partial.npz'
  np.savez(path, x_train=np.zeros((2, 3, 3), np.uint8))
  with pytest.raises(DataError, match='lacks the arrays y_train, x_test, y_test'):
    data_lib.load_dataset(f'npz:{path}')
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not an archive')
  with pytest.raises(DataError, match='cannot read .* as npz'):
    data_lib.load_dataset(f'npz:{junk}')


def test_npz_float_pixels_out_of_range(tmp_path):
  path = tmp_path / 'scaled.npz'
  write_npz(path, x_train=np.full((40, 6, 5), 3.0, np.float32))
  with pytest.raises(DataError, match=r'float x_train must be pixels in \[0, 1\]'):
    data_lib.load_dataset(f'npz:{path}')


def test_npz_wrong_rank_through_load(tmp_path):
  path = tmp_path / 'flat.npz'
  write_npz(path, x_train=np.zeros((40, 30), np.uint8))
  with pytest.raises(DataError, match=r"'npz:.*flat.npz': x_train must be 3-D"):
    data_lib.load_dataset(f'npz:{path}')


def valid_arrays():
  x = np.zeros((6, 4, 4, 1), np.float32)
  y = np.array([0, 1, 2, 0, 1, 2])
  return [x, y, x[:3], y[:3]]


@pytest.mark.parametrize('position, value, match', [
    (0, np.zeros((6, 4), np.float32), 'x_train must be 3-D'),
    (2, np.zeros((3, 4, 4, 1, 1), np.float32), 'x_test must be 3-D'),
    (1, np.zeros((6, 1), np.int64), 'y_train must be 1-D labels'),
    (3, np.array([0, 1]), 'x_test has 3 images but y_test has 2 labels'),
    (1, np.array([0, 1, 2, 0, 1, 3]), r'y_train has labels outside \[0, 3\): e.g. 3'),
    (3, np.array([0, -1, 2]), r'y_test has labels outside \[0, 3\): e.g. -1'),
    (1, np.array([0, 1, 0, 0, 1, 1]), r'class\(es\) \[2\] have no training images'),
    (1, np.array([0, 1, 2, 0, 1, 2.5]), 'y_train must hold integer class labels'),
    (0, np.full((6, 4, 4, 1), np.nan, np.float32), 'x_train has non-finite pixels'),
    (2, np.zeros((3, 5, 4, 1), np.float32), r'train images are \(4, 4, 1\) but test'),
    (0, np.zeros((0, 4, 4, 1), np.float32), 'x_train has 0 images but y_train has 6'),
])
def test_validate_arrays_errors(position, value, match):
  arrays = valid_arrays()
  arrays[position] = value
  with pytest.raises(DataError, match="dataset 'toy': " + match):
    data_lib.validate_arrays('toy', *arrays, 3)


def test_validate_arrays_accepts_good_data():
  data_lib.validate_arrays('toy', *valid_arrays(), 3)
  x, y, xt, yt = valid_arrays()
  data_lib.validate_arrays('toy', x[..., 0], y.astype(np.float32), xt[..., 0], yt, 3)
  with pytest.raises(DataError, match="'toy': the train split is empty"):
    data_lib.validate_arrays('toy', x[:0], y[:0], xt, yt, 3)


def test_check_ipc():
  ds = data_lib.load_dataset('digits', normalize=False)
  data_lib.check_ipc(ds, 139)
  with pytest.raises(DataError, match=r"'digits': ipc=140 needs 140 training images per "
                     r"class, but class 8 \('8'\) has only 139 \(1 class\(es\) too small\)"):
    data_lib.check_ipc(ds, 140)
  for bad in (0, -2, 1.5, True):
    with pytest.raises(ConfigError, match='ipc must be a positive integer'):
      data_lib.check_ipc(ds, bad)


# ---- data_resize on in-memory sources (the tfds path: tests/test_podd_configs.py) ----


def _triangle_resize(img, out_hw):
  """Explicit separable antialiased bilinear filter in float64: output i is centred at
  source (i + 0.5)·s, s = n/m, input j at j + 0.5, weight max(0, 1 − |d|/max(s, 1))."""
  def weights(n, m):
    s = n / m
    d = (np.arange(n)[None, :] + 0.5) - (np.arange(m)[:, None] + 0.5) * s
    w = np.maximum(0.0, 1.0 - np.abs(d) / max(s, 1.0))
    return w / w.sum(axis=1, keepdims=True)
  return np.einsum('ij,jkc,lk->ilc', weights(img.shape[0], out_hw[0]),
                   img.astype(np.float64), weights(img.shape[1], out_hw[1]))


@pytest.mark.parametrize('out_hw', [(12, 10), (3, 4)])   # enlarge; shrink (antialiased)
def test_npz_resize_matches_an_explicit_triangle_filter(tmp_path, out_hw):
  arrays = write_npz(tmp_path / 'd.npz', n=8, shape=(6, 5, 3))
  ds = data_lib.load_dataset(f'npz:{tmp_path / "d.npz"}', normalize=False, resize=out_hw)
  assert ds.x_train.shape == (8,) + out_hw + (3,) and ds.x_test.shape == (4,) + out_hw + (3,)
  for got, img in zip(ds.x_train, arrays['x_train']):
    np.testing.assert_allclose(got, _triangle_resize(img / 255.0, out_hw), atol=1e-5)


def test_resize_to_the_same_size_changes_nothing(tmp_path):
  write_npz(tmp_path / 'd.npz', n=8, shape=(6, 5, 3))
  plain = data_lib.load_dataset(f'npz:{tmp_path / "d.npz"}', normalize=False)
  same = data_lib.load_dataset(f'npz:{tmp_path / "d.npz"}', normalize=False, resize=[6, 5])
  np.testing.assert_array_equal(plain.x_train, same.x_train)
