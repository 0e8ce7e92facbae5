"""PoDD configs end to end, and the tfds path they need: resizing and failing fast.

``podd_cub.py:runlocal`` runs on ``tfds.testing.mock_data`` (its data stays
``tfds:caltech_birds2011``); the MNIST and CIFAR-10 configs on a tiny npz through
``--config.data``. The resize is checked against an explicit NumPy triangle filter, the
fail-fast path against a clock and a guard on every download entry point.
"""

import json
import math
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxdd import data as data_lib
from jaxdd import distill
from jaxdd.errors import ConfigError, DataError
from conftest import REPO, load_config, write_npz

tfds = pytest.importorskip('tensorflow_datasets')
tf = pytest.importorskip('tensorflow')


# ---- helpers ------------------------------------------------------------------------


def resize_reference(img: np.ndarray, out_hw) -> np.ndarray:
  """An explicit separable triangle filter (antialiased bilinear), in float64.

  Along an axis of length n resized to m (scale s = n/m), output i is centred at source
  coordinate (i + 0.5)·s and input j at j + 0.5; the weight is max(0, 1 − |d|/max(s, 1)),
  normalised over the inputs. Shrinking widens the triangle (antialiasing); enlarging
  is plain bilinear with half-pixel centres, the edge pixels held.
  """
  def weights(n, m):
    s = n / m
    d = (np.arange(n)[None, :] + 0.5) - (np.arange(m)[:, None] + 0.5) * s
    w = np.maximum(0.0, 1.0 - np.abs(d) / max(s, 1.0))
    return w / w.sum(axis=1, keepdims=True)

  wy, wx = weights(img.shape[0], out_hw[0]), weights(img.shape[1], out_hw[1])
  return np.einsum('ij,jkc,lk->ilc', wy, img.astype(np.float64), wx)


def mock_images_dataset(images, labels):
  """An ``as_dataset_fn`` for ``tfds.testing.mock_data``: these (image, label) examples
  in both splits, as tfds' mock would yield them (feature dicts)."""
  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    del self, split, decoders, read_config, shuffle_files
    return tf.data.Dataset.from_generator(
        lambda: ({'image': im, 'label': np.int64(lb)} for im, lb in zip(images, labels)),
        output_signature={'image': tf.TensorSpec((None, None, 3), tf.uint8),
                          'label': tf.TensorSpec((), tf.int64)})
  return as_dataset


def random_cub_like(n, num_classes, seed=0):
  """n uint8 images of random sizes 5..49 (tfds' mock range), labels i mod K so that
  every class is present."""
  rng = np.random.default_rng(seed)
  images = [rng.integers(0, 256, (*rng.integers(5, 50, 2), 3), dtype=np.uint8)
            for _ in range(n)]
  return images, np.arange(n) % num_classes


# ---- resize -------------------------------------------------------------------------


def test_tfds_images_of_two_sizes_come_out_32x32_as_the_reference_filter():
  rng = np.random.default_rng(1)
  small = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)    # enlarged: plain bilinear
  large = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)   # shrunk 2× and 1.5×
  images, labels = [small, large, large, small], [0, 0, 1, 1]
  with tfds.testing.mock_data(as_dataset_fn=mock_images_dataset(images, labels)):
    ds = data_lib.load_dataset('tfds:cats_vs_dogs', normalize=False, resize=(32, 32))
  assert ds.x_train.shape == (4, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(ds.y_train, labels)
  for got, img in zip(ds.x_train, images):
    np.testing.assert_allclose(got * 255.0, resize_reference(img, (32, 32)), atol=2e-3)


@pytest.mark.parametrize('value', [(32,), (32, 0), (32.0, 32), 'x', (True, 4)])
def test_bad_data_resize_is_a_config_error(value, tmp_path):
  path = write_npz(tmp_path / 'd.npz')
  with pytest.raises(ConfigError, match=r'data_resize must be \(height, width\)'):
    data_lib.load_dataset('npz:' + path, resize=value)


# ---- fail fast ----------------------------------------------------------------------


@pytest.fixture
def no_download(monkeypatch):
  """Records (instead of running) every way tfds could reach the network."""
  calls = []

  def guard(what):
    def fn(*args, **kwargs):
      calls.append(what)
      raise AssertionError(f'{what} was called')
    return fn

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare',
                      guard('download_and_prepare'))
  for name in ('download', 'download_and_extract', 'download_kaggle_data'):
    monkeypatch.setattr(tfds.download.DownloadManager, name, guard(name), raising=False)
  monkeypatch.setattr(socket.socket, 'connect', guard('socket.connect'))
  return calls


def test_unprepared_tfds_data_fails_fast_with_the_ways_to_provide_it(tmp_path, no_download):
  t0 = time.monotonic()
  with pytest.raises(DataError) as info:
    data_lib.load_dataset('tfds:caltech_birds2011', data_dir=str(tmp_path),
                          resize=(32, 32))
  assert time.monotonic() - t0 < 10.0
  assert no_download == []
  msg = str(info.value)
  assert '\n' not in msg and "'tfds:caltech_birds2011'" in msg and str(tmp_path) in msg
  for hint in ('tfds build caltech_birds2011 --data_dir=DIR', '--config.data_dir=DIR',
               '--config.manual_dir=DIR', '--config.data=npz:PATH'):
    assert hint in msg


def test_podd_cub_config_fails_fast_before_compiling(tmp_path, no_download, monkeypatch):
  config = load_config('podd_cub', 'runlocal')
  config.data_dir = str(tmp_path / 'empty')
  monkeypatch.setattr(distill, 'make_step', lambda *a, **k: pytest.fail('compiled'))
  with pytest.raises(DataError, match='tfds build caltech_birds2011'):
    distill.train_and_evaluate(config, str(tmp_path / 'w'))
  assert no_download == []


# ---- configs ------------------------------------------------------------------------


def _check_outputs(workdir, config, num_classes, image_hw):
  res = json.loads((workdir / 'results.json').read_text())
  for name in ('distilled.npz', 'distilled.png', 'poster.png'):
    assert (workdir / name).exists(), name
  with np.load(workdir / 'distilled.npz') as f:
    hp, wp, _ = f['param/syn/poster'].shape
    images, labels = f['images'], f['labels']
    learned = 'param/syn/labels' in f.files
  # The budget is the poster's pixels over K images: an independent count, and within
  # a rounding of the asked-for ipc (the poster's sides are whole pixels).
  h, w = image_hw
  assert res['budget_ipc'] == pytest.approx(hp * wp / (num_classes * h * w), rel=1e-9)
  assert res['budget_ipc'] == pytest.approx(config.ipc, rel=0.02)
  assert res['budget_ipc'] <= config.ipc + 1e-9
  n_x, n_y = config.parameterization.get('patches', None) or (images.shape[0], 1)
  assert images.shape == (n_x * n_y, h, w, images.shape[-1])
  assert labels.shape == (images.shape[0], num_classes)
  assert learned == config.parameterization.learn_labels
  assert 0.0 <= res['accuracy_mean'] <= 1.0
  return res


def test_podd_cub_runlocal_end_to_end_on_mock_tfds(tmp_path):
  config = load_config('podd_cub', 'runlocal')
  assert config.data == 'tfds:caltech_birds2011' and tuple(config.data_resize) == (32, 32)
  images, labels = random_cub_like(200, 200)
  with tfds.testing.mock_data(as_dataset_fn=mock_images_dataset(images, labels)):
    res = distill.train_and_evaluate(config, str(tmp_path / 'w'))
  _check_outputs(tmp_path / 'w', config, 200, (32, 32))
  assert res['steps'] == 2 and res['data'] == 'tfds:caltech_birds2011'


@pytest.mark.parametrize('name, arg, shape', [
    ('podd_mnist', 'runlocal', (28, 28, 1)),
    ('podd_cifar10', 'runlocal,ipc=0.5', (32, 32, 3)),
    ('podd_digits', 'runlocal', None),   # on the bundled digits themselves
])
def test_podd_runlocal_end_to_end(name, arg, shape, tmp_path):
  config = load_config(name, arg)
  if shape is None:
    assert config.data == 'digits'
    shape = (8, 8, 1)
  else:
    config.data = 'npz:' + write_npz(tmp_path / 'd.npz', shape=shape, classes=10,
                                     train_per_class=8, test_per_class=2)
  res = distill.train_and_evaluate(config, str(tmp_path / 'w'))
  _check_outputs(tmp_path / 'w', config, 10, shape[:2])
  assert res['steps'] == config.steps


def test_podd_cifar10_labels_and_patches_follow_the_paper():
  for ipc in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
    c = load_config('podd_cifar10', str(ipc))
    assert c.ipc == ipc and isinstance(c.ipc, float)
    learned = ipc < 0.7          # paper §5.1: fixed labels at 0.7, 0.8, 0.9, 1.0
    assert c.parameterization.learn_labels == learned
    assert ('labels' in c.optim) == learned
    if learned:
      assert c.optim.labels.nonnegative and c.optim.labels.lr == 1e-3
    # Poster height of a 2x5 grid of ipc*10 32x32 images: floor(sqrt(B*2/5)).
    hp = math.floor(math.sqrt(ipc * 10 * 32 * 32 * 2 / 5) + 1e-9)
    n_x, n_y = c.parameterization.patches
    assert n_y <= hp - 31                                # distinct crop rows
    assert (n_x, n_y) == ((16, 6) if hp - 31 >= 6 else (24, 4))
    assert n_x * n_y == 96
  c = load_config('podd_cifar10')
  assert (c.objective.batch_syn, c.objective.batch_real) == (96, 500)     # bs_d, bs / K
  assert (c.objective.window, c.objective.total_window) == (60, 200)
  assert c.zca == 'krr' and c.eval.loss == 'ce' and c.optim.images.clip_running_norm


def test_podd_cub_settings_follow_the_paper():
  c = load_config('podd_cub', '0.3')
  assert c.ipc == 0.3 and tuple(c.parameterization.patches) == (60, 30)
  assert (c.objective.batch_syn, c.objective.batch_real * 200) == (200, 3000)
  assert c.parameterization.learn_labels and c.optim.labels.nonnegative
  assert c.zca == 'krr' and c.steps == 16000


def results_section(name: str) -> str:
  """The section of configs/NAME.py in the docs/results page its docstring names."""
  with open(os.path.join(REPO, 'configs', f'{name}.py')) as f:
    page, = re.findall(r'docs/results/\w+\.md', f.read().split('"""')[1])
  with open(os.path.join(REPO, page)) as f:
    return f.read().split(f'## configs/{name}.py\n')[1].split('\n## ')[0]


@pytest.mark.parametrize('name, numbers, jaxdd_status', [
    ('podd_cifar10', ('59.1', '49.5'), 'jaxdd: not yet measured'),
    ('podd_cub', ('16.2', '14.8'), 'jaxdd: not yet measured'),
    ('podd_mnist', ('79.86', '76.83', '72.05'), 'jaxdd, 2 CPU cores, 1 IPC, 200 steps')])
def test_docstrings_state_the_command_and_the_papers_numbers(name, numbers, jaxdd_status):
  doc = results_section(name)   # the config's experiment log, moved to docs/results
  assert f'python -m jaxdd.launch --config=configs/{name}.py' in doc
  assert jaxdd_status in doc   # what jaxdd measured with it, or that it has not yet
  for number in numbers:
    assert number in doc


_CUB_ON_DEVICES = '''
import sys, json
sys.path.insert(0, {tests!r})
import jax, numpy as np, tensorflow_datasets as tfds
from jaxdd import distill, sharding
from conftest import load_config
from test_podd_configs import mock_images_dataset, random_cub_like
config = load_config('podd_cub', 'runlocal')
images, labels = random_cub_like(200, 200)
steps = {{}}
for n in (2, 4, 8):   # the meshes a run on n devices builds, in one 8-device process
  mesh = sharding.make_mesh(config.mesh, devices=jax.devices()[:n])
  with tfds.testing.mock_data(as_dataset_fn=mock_images_dataset(images, labels)), \\
       jax.set_mesh(mesh):
    run = distill.setup(config, mesh)
    state = run.state
    for _ in range(config.steps):
      state, metrics = run.step_fn(state, run.base_key, run.x_train, run.index)
  assert np.isfinite(float(metrics['loss']))
  steps[n] = int(state['step'])
print(json.dumps(steps))
'''


def test_podd_cub_runlocal_starts_on_2_4_and_8_devices(tmp_path):
  """1 device: the end-to-end test above. Its real batch (one image per class) and
  synthetic minibatch (16 patches) split over any device count (docs/design.md)."""
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=8 '
                       '--xla_cpu_multi_thread_eigen=false')
  script = _CUB_ON_DEVICES.format(tests=os.path.join(REPO, 'tests'))
  proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                        text=True, timeout=600, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == {'2': 2, '4': 2, '8': 2}
