"""FreD: the DCT against direct sums and scipy, the EVR mask, decode, budget, DM end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.fft

from jaxdd import dct, distill, registry
from jaxdd.config_utils import base_config
from jaxdd.errors import ConfigError, DataError
from jaxdd.parameterizations.fred import explained_variance_ratio
from jaxdd.parameterizations.fred import make_fred
from jaxdd.parameterizations.fred import valid_msz
from conftest import load_config

NORMS = ('ortho', None)


def _direct_dct2(x, norm):
  """The DCT-II of x [H, W, C] as the textbook double sum, one coefficient at a time."""
  h, w, _ = x.shape
  out = np.zeros(x.shape)
  for k in range(h):
    for q in range(w):
      total = np.zeros(x.shape[-1])
      for i in range(h):
        for j in range(w):
          total += (x[i, j] * np.cos(np.pi * k * (2 * i + 1) / (2 * h))
                    * np.cos(np.pi * q * (2 * j + 1) / (2 * w)))
      if norm is None:
        scale = 4.0
      else:
        scale = ((np.sqrt(1 / h) if k == 0 else np.sqrt(2 / h))
                 * (np.sqrt(1 / w) if q == 0 else np.sqrt(2 / w)))
      out[k, q] = scale * total
  return out


def _sampler(images):
  """A ``sample_real`` that returns fixed class-major images [K, m, H, W, C]."""
  def sample_real(m):
    assert m == images.shape[1], (m, images.shape)
    k = images.shape[0]
    return (images.reshape((-1,) + images.shape[2:]).astype(np.float32),
            np.repeat(np.arange(k, dtype=np.int32), m))
  return sample_real


# ---------------------------------------------------------------------------------
# The transform.
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize('norm', NORMS)
def test_dct2_matches_the_direct_double_sum(norm):
  x = np.random.default_rng(0).normal(size=(2, 5, 7, 3))     # H != W, C = 3, a batch
  got = np.asarray(dct.dct2(jnp.asarray(x, jnp.float32), norm))
  for b in range(2):
    want = _direct_dct2(x[b], norm)
    np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize('norm', NORMS)
def test_idct2_inverts_dct2(norm):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 6, 4, 2)), jnp.float32)
  np.testing.assert_allclose(dct.idct2(dct.dct2(x, norm), norm), x, atol=1e-5)
  np.testing.assert_allclose(dct.dct2(dct.idct2(x, norm), norm), x, atol=1e-4)
  h = dct.dct_matrix(6, norm)
  np.testing.assert_allclose(dct.idct_matrix(6, norm) @ h, np.eye(6), atol=1e-12)


def test_orthonormal_dct_preserves_energy():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 8, 5, 3)), jnp.float32)
  np.testing.assert_allclose(jnp.sum(dct.dct2(x) ** 2, axis=(1, 2)),
                             jnp.sum(x ** 2, axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize('norm', NORMS)
def test_dct2_matches_scipy(norm):
  x = np.random.default_rng(3).normal(size=(6, 9, 3))
  want = scipy.fft.dctn(x, type=2, norm=norm, axes=(0, 1))
  np.testing.assert_allclose(dct.dct2(jnp.asarray(x, jnp.float32), norm), want,
                             rtol=1e-4, atol=1e-4 * np.abs(want).max())
  np.testing.assert_allclose(dct.dct2_host(x, norm), want, rtol=1e-12, atol=1e-10)
  back = scipy.fft.idctn(want, type=2, norm=norm, axes=(0, 1))
  np.testing.assert_allclose(dct.idct2(jnp.asarray(want, jnp.float32), norm), back,
                             atol=1e-4)


def test_unknown_norm_is_refused():
  with pytest.raises(ValueError, match='ortho'):
    dct.dct_matrix(4, 'forward')


# ---------------------------------------------------------------------------------
# The mask.
# ---------------------------------------------------------------------------------


def test_evr_is_the_covariance_diagonal_over_its_trace():
  freq = np.random.default_rng(4).normal(size=(7, 3, 4, 2))
  flat = freq.mean(axis=-1).reshape(7, -1)
  cov = np.cov(flat.T)
  np.testing.assert_allclose(explained_variance_ratio(freq), np.diag(cov) / np.trace(cov))


@pytest.mark.parametrize('norm', NORMS)
def test_mask_keeps_the_top_explained_variance_positions(norm):
  h, w, c, n = 4, 5, 2, 10          # ipc 2, msz 4: n = 2*20/4 = 10 instances per class
  rng = np.random.default_rng(5)
  # Orthonormal-domain coefficients: tiny noise everywhere, large variance at the known
  # positions of each class. The scale gap (1e3) dwarfs the <= 4x reweighting of the
  # unnormalised transform, so both norms must pick the same positions.
  known = {0: [(0, 1), (1, 3), (2, 0), (3, 4)], 1: [(0, 0), (1, 1), (2, 2), (3, 3)]}
  freq = rng.normal(0, 0.01, size=(2, n, h, w, c))
  for k, positions in known.items():
    for p, (i, j) in enumerate(positions):
      freq[k, :, i, j, :] += rng.normal(0, 10.0 * (p + 1), size=(n, 1))
  # A position with huge variance in each channel but opposite signs: the channel
  # average cancels it, so it must not be chosen.
  cancel = rng.normal(0, 100.0, size=n)
  freq[0, :, 3, 0, 0] += cancel
  freq[0, :, 3, 0, 1] -= cancel
  images = scipy.fft.idctn(freq, type=2, norm='ortho', axes=(2, 3))
  param = make_fred(num_classes=2, ipc=2, image_shape=(h, w, c), msz=4, dct_norm=norm)
  params = param.init(jax.random.key(0), _sampler(images))
  for k, positions in known.items():
    assert params['mask_index'][k].tolist() == sorted(i * w + j for i, j in positions)


def test_mask_ties_go_to_the_lowest_flat_index():
  # Identical instances: no variance anywhere, every position ties.
  images = np.broadcast_to(np.random.default_rng(6).normal(size=(1, 1, 4, 4, 1)),
                           (2, 8, 4, 4, 1))
  param = make_fred(num_classes=2, ipc=1, image_shape=(4, 4, 1), msz=2)
  params = param.init(jax.random.key(0), _sampler(np.array(images)))
  assert params['mask_index'].tolist() == [[0, 1], [0, 1]]


# ---------------------------------------------------------------------------------
# Decode.
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize('norm', NORMS)
def test_all_coefficients_kept_reproduces_the_real_images(norm):
  images = np.random.default_rng(7).uniform(-2, 2, size=(3, 2, 5, 6, 3))   # K 3, ipc 2
  param = make_fred(num_classes=3, ipc=2, image_shape=(5, 6, 3), msz=30, dct_norm=norm)
  params = param.init(jax.random.key(0), _sampler(images))
  assert params['coeffs'].shape == (3, 2, 30, 3)
  syn = param.decode(params)
  np.testing.assert_allclose(syn.images, images.reshape(6, 5, 6, 3), atol=1e-5)
  np.testing.assert_array_equal(syn.labels, np.eye(3)[[0, 0, 1, 1, 2, 2]])


def _small_fred(norm='ortho', learn_labels=False, seed=8):
  """K 2, ipc 1, 4x4x2, msz 4: 4 instances per class."""
  images = np.random.default_rng(seed).normal(size=(2, 4, 4, 4, 2))
  param = make_fred(num_classes=2, ipc=1, image_shape=(4, 4, 2), msz=4, dct_norm=norm,
                    learn_labels=learn_labels)
  return param, param.init(jax.random.key(0), _sampler(images))


@pytest.mark.parametrize('norm', NORMS)
def test_decode_is_the_inverse_dct_of_the_masked_coefficients(norm):
  param, params = _small_fred(norm)
  coeffs, index = np.asarray(params['coeffs']), np.asarray(params['mask_index'], int)
  full = np.zeros((2, 4, 16, 2))
  for k in range(2):
    for j, pos in enumerate(index[k]):
      full[k, :, pos] = coeffs[k, :, j]
  want = scipy.fft.idctn(full.reshape(8, 4, 4, 2), type=2, norm=norm, axes=(1, 2))
  np.testing.assert_allclose(param.decode(params).images, want, atol=1e-5)


def test_gradient_reaches_the_coefficients_only():
  param, params = _small_fred()
  target = jnp.asarray(np.random.default_rng(9).normal(size=(8, 4, 4, 2)), jnp.float32)

  def loss(p):
    return jnp.sum(jnp.sin(param.decode(p).images) * target)

  grads = jax.grad(loss)(params)
  assert float(jnp.abs(grads['coeffs']).min()) > 0    # every stored coefficient matters
  assert float(jnp.abs(grads['mask_index']).max()) == 0.0
  # Finite-difference check of one directional derivative (float64-free: central
  # differences of a smooth loss at a moderate step).
  v = jax.tree_util.tree_map(jnp.zeros_like, params)
  v['coeffs'] = jnp.asarray(np.random.default_rng(10).normal(size=params['coeffs'].shape),
                            jnp.float32)
  eps = 1e-2

  def shift(s):
    return jax.tree_util.tree_map(lambda a, b: a + s * b, params, v)

  numeric = (loss(shift(eps)) - loss(shift(-eps))) / (2 * eps)
  analytic = jnp.sum(grads['coeffs'] * v['coeffs'])
  np.testing.assert_allclose(numeric, analytic, rtol=2e-3)


def test_perturbing_one_coefficient_adds_one_cosine_basis_image():
  param, params = _small_fred()
  before = np.asarray(param.decode(params).images)
  bumped = dict(params, coeffs=params['coeffs'].at[1, 2, 3, 0].add(1.0))
  diff = np.asarray(param.decode(bumped).images) - before
  pos = int(params['mask_index'][1, 3])
  basis = np.zeros((4, 4))
  basis[pos // 4, pos % 4] = 1.0
  want = np.zeros_like(diff)
  want[1 * 4 + 2, :, :, 0] = scipy.fft.idctn(basis, type=2, norm='ortho')
  np.testing.assert_allclose(diff, want, atol=1e-5)


@pytest.mark.parametrize('optim', [dict(name='sgd', lr=1e6, momentum=0.5),
                                   dict(name='adam', lr=0.1)])
def test_mask_never_changes_under_the_optimizer(optim):
  param, syn = _small_fred(norm=None)
  config = base_config(data='digits', ipc=1)
  config.optim.images.update(optim)
  tx = distill.make_tx(config)
  params = {'syn': syn, 'extras': {}}
  opt_state = tx.init(params)

  def loss(p):
    return jnp.sum(param.decode(p['syn']).images ** 2)

  mask0 = np.asarray(syn['mask_index'])
  for _ in range(3):
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(np.asarray(params['syn']['mask_index']), mask0)
  assert params['syn']['mask_index'].dtype == jnp.float32
  assert not np.allclose(params['syn']['coeffs'], syn['coeffs'])


def test_learned_labels():
  param, params = _small_fred(learn_labels=True)
  assert params['labels'].shape == (8, 2)
  soft = params['labels'] * 0.5
  syn = param.decode(dict(params, labels=soft))
  np.testing.assert_array_equal(syn.labels, soft)


# ---------------------------------------------------------------------------------
# Budget and errors.
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize('learn_labels', [False, True])
def test_budget_counts_stored_coefficients_not_the_mask(learn_labels):
  images = np.random.default_rng(11).normal(size=(3, 4, 4, 4, 2))   # K 3, n 2*16/8 = 4
  param = make_fred(num_classes=3, ipc=2, image_shape=(4, 4, 2), msz=8,
                    learn_labels=learn_labels)
  params = param.init(jax.random.key(0), _sampler(images))
  b = param.budget(params)
  coeffs = 3 * 4 * 8 * 2
  labels = 3 * 4 * 3 if learn_labels else 0
  assert b.floats == coeffs + labels
  assert b.ipc == coeffs / (3 * 4 * 4 * 2) == 2.0
  assert b.detail['coeffs'] == coeffs and b.detail['mask_indices'] == 3 * 8
  assert ('labels' in b.detail) == learn_labels


@pytest.mark.parametrize('msz', [0, 17, 3, 2.5, True, None])
def test_bad_msz_is_refused(msz):
  with pytest.raises(ConfigError, match=r'parameterization\.msz.*accepted: 1, 2, 4, 8, 16'):
    make_fred(num_classes=2, ipc=1, image_shape=(4, 4, 1), msz=msz)


def test_bad_dct_norm_is_refused_and_none_spelled_as_text_is_accepted():
  with pytest.raises(ConfigError, match='parameterization.dct_norm'):
    make_fred(num_classes=2, ipc=1, image_shape=(4, 4, 1), msz=4, dct_norm='forward')
  config = base_config(data='digits', ipc=1)
  config.parameterization = dict(name='fred', msz=4, dct_norm='none')
  param = registry.get_parameterization(config, 2, (4, 4, 1))
  images = np.random.default_rng(12).normal(size=(2, 4, 4, 4, 1))
  params = param.init(jax.random.key(0), _sampler(images))
  want = scipy.fft.dctn(images[0, 0, :, :, 0], type=2, norm=None).reshape(-1)
  index = np.asarray(params['mask_index'][0], int)
  np.testing.assert_allclose(params['coeffs'][0, 0, :, 0], want[index], rtol=1e-5)


def test_too_few_real_images_names_the_instances_fred_needs():
  def sample_real(m):
    raise DataError(f"dataset 'x': class 0 has 3 images, fewer than the {m} per class")

  param = make_fred(num_classes=2, ipc=1, image_shape=(4, 4, 1), msz=4)
  with pytest.raises(DataError, match='ipc·H·W/msz = 4 instances per class'):
    param.init(jax.random.key(0), sample_real)


def test_configs_use_valid_mask_sizes():
  for name, shape in (('fred_dm_cifar10', (32, 32, 3)), ('fred_dm_mnist', (28, 28, 1))):
    for ipc in (1, 2, 10, 11, 50, 51):
      config = load_config(name, str(ipc))
      assert config.ipc == ipc
      assert config.parameterization.msz in valid_msz(ipc, shape), (name, ipc)
    assert load_config(name, 'runlocal').ipc == 1
    assert load_config(name, 'ipc=10,runlocal').ipc == 10
  assert load_config('fred_dm_cifar10').ipc == 2
  assert load_config('fred_dm_mnist').ipc == 10


# ---------------------------------------------------------------------------------
# End to end under DM.
# ---------------------------------------------------------------------------------


def test_fred_under_dm_end_to_end(tmp_path):
  config = base_config(data='digits', ipc=1)
  config.parameterization = dict(name='fred', msz=16)    # 8x8 digits: 4 instances/class
  config.model.update(width=16, depth=1)      # small and without DSA: a fast compile
  config.objective.update(batch_real=8, dsa=False)
  config.steps = 3
  config.checkpoint_every = 3
  config.log_every = 1
  config.optim.images.lr = 10.0
  res = distill.train_and_evaluate(config, str(tmp_path / 'w'), evaluate=False)
  assert res['budget_floats'] == 10 * 4 * 16 and res['budget_ipc'] == 1.0
  text = (tmp_path / 'w' / 'metrics.jsonl').read_text()
  losses = [json.loads(line)['loss'] for line in text.splitlines()]
  assert len(losses) == 3 and all(np.isfinite(losses))
  with np.load(tmp_path / 'w' / 'distilled.npz') as f:
    assert f['images'].shape == (40, 8, 8, 1)
    saved = {k: f[f'param/syn/{k}'] for k in ('mask_index', 'coeffs')}
  initial = distill.setup(config).state['params']['syn']
  np.testing.assert_array_equal(saved['mask_index'], initial['mask_index'])
  assert not np.allclose(saved['coeffs'], initial['coeffs'])    # the steps did learn
