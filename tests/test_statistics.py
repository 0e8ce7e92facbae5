"""Teacher statistics, SRe2L and EDC losses against numpy and explicit loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import models
from jaxdd.errors import ConfigError
from jaxdd.sre.losses import edc
from jaxdd.sre.losses import statistics as st

SHAPE = (8, 8, 1)


def _teacher(seed=0):
  """A width-8, depth-2 BN ConvNet with non-trivial running statistics."""
  model = models.get_model('convnet_bn', 3, image_shape=SHAPE, width=8, depth=2)
  variables = models.init_model(model, jax.random.key(seed), SHAPE)
  rng = np.random.default_rng(seed)
  stats = jax.tree_util.tree_map(
      lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), jnp.float32),
      variables['batch_stats'])
  return model, {**variables, 'batch_stats': stats}


def test_layer_inputs_are_the_conv_and_bn_inputs():
  model, variables = _teacher()
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4,) + SHAPE), jnp.float32)
  logits, taps = jax.jit(lambda v, x: st.layer_inputs(
      model, v, x, kinds=('conv', 'batchnorm')))(variables, x)
  assert sorted(taps) == ['000:block_0/conv', '001:block_0/norm', '002:block_1/conv',
                          '003:block_1/norm']
  (ref_logits, feats), _ = models.apply_model(model, variables, x, features=True)
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(taps['000:block_0/conv'], x)
  np.testing.assert_allclose(taps['002:block_1/conv'], feats['layers'][0], rtol=1e-5,
                             atol=1e-6)
  # The first BN's input is the first conv's output: XLA's convolution as reference.
  conv = variables['params']['block_0']['conv']
  ref = jax.lax.conv_general_dilated(x, conv['kernel'], (1, 1), [(1, 1), (1, 1)],
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(taps['001:block_0/norm'], ref + conv['bias'], rtol=1e-4,
                             atol=1e-5)
  running = st.bn_running_stats(variables, {k: v for k, v in taps.items() if 'norm' in k})
  np.testing.assert_array_equal(running[1][1], variables['batch_stats']['block_1']['norm']['var'])


def _numpy_stats(f, y, k):
  rows = f.reshape(-1, f.shape[-1])
  out = {'mean': rows.mean(0), 'var': rows.var(0), 'cov': np.cov(rows.T, bias=True)}
  cm, cv, cc, within = [], [], [], []
  for c in range(k):
    r = f[y == c].reshape(-1, f.shape[-1])
    cm.append(r.mean(0))
    cv.append(r.var(0))
    cc.append(np.cov(r.T, bias=True))
    within.append(f[y == c].reshape(int((y == c).sum()), -1, f.shape[-1]).var(1).mean(0))
  out.update(class_mean=np.stack(cm), class_var=np.stack(cv), class_cov=np.stack(cc),
             class_var_within=np.stack(within))
  # Φ = X'ᵀY / n with X' the spatial means.
  xs = f.reshape(f.shape[0], -1, f.shape[-1]).mean(1)
  out['flc'] = xs.T @ np.eye(k)[y] / f.shape[0]
  return out


def test_accumulated_statistics_equal_full_batch_numpy():
  rng = np.random.default_rng(0)
  k, n = 3, 23
  # A large offset: a naive E[x²] − E[x]² in float32 would lose the variance.
  x = (1000 + rng.normal(size=(n, 4, 4, 3)) * rng.uniform(0.5, 2, 3)).astype(np.float32)
  y = rng.permutation(np.arange(n) % k)
  # Features exact in float32 (a spatial mean in float32 would already round), so
  # the check is of the accumulation alone.
  fn = lambda xb: {'map': xb, 'vec': xb[:, 1, 2] * 2.0}
  got = st.accumulate_statistics(fn, x, y, k, batch_size=5, cov=True, class_cov=True)
  for name, feats in (('map', x), ('vec', x[:, 1, 2].astype(np.float64) * 2.0)):
    ref = _numpy_stats(np.asarray(feats, np.float64).reshape(n, -1, 3), y, k)
    for key, value in ref.items():
      np.testing.assert_allclose(got[name][key], value, rtol=1e-5, atol=1e-7,
                                 err_msg=f'{name}/{key}')
    np.testing.assert_array_equal(got[name]['class_count'],
                                  np.bincount(y, minlength=k) * (16 if name == 'map' else 1))
  lean = st.accumulate_statistics(fn, x, y, k, batch_size=7, cov=False)
  assert 'cov' not in lean['map'] and 'class_cov' not in lean['map']
  np.testing.assert_allclose(lean['map']['var'], got['map']['var'], rtol=1e-6)
  np.testing.assert_allclose(lean['map']['class_var'], got['map']['class_var'], rtol=1e-6)
  with pytest.raises(ConfigError, match='batch_size'):
    st.accumulate_statistics(fn, x, y, k, batch_size=0)


def test_sre2l_loss_matches_numpy_with_first_bn_weighting():
  model, variables = _teacher(2)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(5,) + SHAPE), jnp.float32)
  labels = jnp.asarray([0, 1, 2, 0, 1])
  logits, taps = st.layer_inputs(model, variables, x, kinds=('batchnorm',))
  bn_inputs = [taps[key] for key in sorted(taps)]
  running = st.bn_running_stats(variables, taps)
  loss, aux = st.sre2l_loss(logits, labels, bn_inputs, running)

  lg = np.asarray(logits, np.float64)
  logp = lg - lg.max(1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
  ce = -logp[np.arange(5), np.asarray(labels)].mean()
  terms = []
  for feat, (rm, rv) in zip(bn_inputs, running):
    rows = np.asarray(feat, np.float64).reshape(-1, feat.shape[-1])
    terms.append(np.linalg.norm(np.asarray(rv) - rows.var(0))
                 + np.linalg.norm(np.asarray(rm) - rows.mean(0)))
  expected = ce + 0.01 * (10 * terms[0] + terms[1])
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  np.testing.assert_allclose(float(aux['ce']), ce, rtol=1e-5)
  plain = st.sre2l_bn_loss(bn_inputs, running, first_multiplier=1.0)
  np.testing.assert_allclose(float(plain), terms[0] + terms[1], rtol=1e-5)


def test_smoothing_value_is_the_running_average_and_gradient_the_current_batch():
  rng = np.random.default_rng(4)
  m = 0.8
  batches = [jnp.asarray(rng.normal(size=(6, 3)), jnp.float32) for _ in range(3)]
  stat = lambda x: {'mean': x.mean(0), 'var': x.var(0)}
  ema = {'mean': jnp.full(3, jnp.nan), 'var': jnp.full(3, jnp.nan)}   # unused at step 0
  ref_mean = None
  w = jnp.asarray(rng.normal(size=3), jnp.float32)
  for step, xb in enumerate(batches):
    cur = np.asarray(xb, np.float64).mean(0)
    ref_mean = cur if ref_mean is None else m * ref_mean + (1 - m) * cur
    smoothed, new_ema = edc.smooth_statistic(ema, stat(xb), step, m)
    np.testing.assert_allclose(smoothed['mean'], ref_mean, rtol=1e-5)
    np.testing.assert_allclose(new_ema['mean'], ref_mean, rtol=1e-5)
    f = lambda x: jnp.vdot(w, edc.smooth_statistic(ema, stat(x), step, m)[0]['var'])
    g_ref = jax.grad(lambda x: jnp.vdot(w, stat(x)['var']))(xb)
    np.testing.assert_allclose(jax.grad(f)(xb), g_ref, rtol=1e-5, atol=1e-7)
    ema = new_ema


def test_class_moments_match_numpy():
  rng = np.random.default_rng(5)
  f = rng.normal(size=(7, 2, 2, 3)).astype(np.float32)
  y = np.array([0, 2, 2, 0, 0, 2, 2])
  got = edc.class_moments(jnp.asarray(f), jnp.asarray(y), 3)
  for c in (0, 2):
    rows = f[y == c].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(got['mean'][c], rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(got['var'][c], rows.var(0), rtol=1e-5)
  np.testing.assert_array_equal(got['mean'][1], 0)


def test_edc_soft_category_aware_loss_matches_numpy():
  rng = np.random.default_rng(6)
  k, c = 4, 3
  d = lambda *s: rng.normal(size=s).astype(np.float32)
  syn = {'mean': d(c), 'var': d(c) ** 2}
  tg = {'mean': d(c), 'var': d(c) ** 2}
  tc = {'mean': d(k, c), 'var': d(k, c) ** 2}
  sc = {'mean': d(k, c), 'var': d(k, c) ** 2}
  labels = np.array([1, 3, 3, 0, 3])
  glob = np.linalg.norm(tg['mean'] - syn['mean']) + np.linalg.norm(tg['var'] - syn['var'])
  # code: the batch statistic against the class statistics averaged over the labels.
  code_cat = sum(np.linalg.norm(tc[s][labels].mean(0) - syn[s]) for s in ('mean', 'var'))
  # paper Form (2): Σ_c p(c) Σ_s ‖s_T|c − s_S|c‖ over classes in the batch.
  paper_cat = 0.0
  for cls in np.unique(labels):
    p = np.mean(labels == cls)
    paper_cat += p * sum(np.linalg.norm(tc[s][cls] - sc[s][cls]) for s in ('mean', 'var'))
  j = lambda t: jax.tree_util.tree_map(jnp.asarray, t)
  got_code = edc.edc_match_loss(j(syn), j(tg), j(tc), jnp.asarray(labels), form='code')
  got_paper = edc.edc_match_loss(j(syn), j(tg), j(tc), jnp.asarray(labels),
                                form='paper', syn_class_stats=j(sc))
  np.testing.assert_allclose(float(got_code), 0.5 * glob + 0.5 * code_cat, rtol=1e-5)
  np.testing.assert_allclose(float(got_paper), 0.5 * glob + 0.5 * paper_cat, rtol=1e-5)
  with pytest.raises(ConfigError, match='form'):
    edc.edc_match_loss(syn, tg, tc, labels, form='local')


def test_flatness_kl_matches_numpy_and_ema_side_is_constant():
  rng = np.random.default_rng(7)
  a, b = rng.normal(size=(2, 5, 4)) * 3
  sm = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(
      z - z.max(1, keepdims=True)).sum(1, keepdims=True)
  p, q = sm(a / 4), sm(b / 4)
  paper = np.mean(np.sum(p * np.log(p / q), 1))
  code = np.mean(q * np.log(q / p))                    # mean over N·K elements
  ja, jb = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  np.testing.assert_allclose(float(edc.flatness_kl(ja, jb)), paper, rtol=1e-4)
  np.testing.assert_allclose(float(edc.flatness_kl(ja, jb, direction='code')), code,
                             rtol=1e-4)
  g = jax.grad(lambda e: edc.flatness_kl(ja, e))(jb)
  assert float(jnp.abs(g).max()) == 0.0
  ema = edc.ema_images(jnp.ones(3), jnp.zeros(3), 0.99)
  np.testing.assert_allclose(ema, 0.99, rtol=1e-6)


def test_concat_crops_layout():
  rng = np.random.default_rng(8)
  crops = rng.normal(size=(2, 4, 8, 6, 3)).astype(np.float32)
  got = np.asarray(edc.concat_crops(jnp.asarray(crops)))
  for b in range(2):
    for i in range(4):
      r, c = divmod(i, 2)   # row-major 2 x 2 grid
      pooled = crops[b, i].reshape(4, 2, 3, 2, 3).mean((1, 3))
      np.testing.assert_allclose(got[b, 4 * r:4 * r + 4, 3 * c:3 * c + 3], pooled,
                                 rtol=1e-5, atol=1e-6)
  one = crops[:, :1]
  np.testing.assert_array_equal(edc.concat_crops(jnp.asarray(one)), one[:, 0])
  with pytest.raises(ConfigError, match='N=3'):
    edc.concat_crops(jnp.zeros((1, 3, 8, 8, 1)))


def test_bad_tap_kind_raises_config_error():
  model, variables = _teacher()
  with pytest.raises(ConfigError, match="kinds='dense'"):
    st.layer_inputs(model, variables, jnp.zeros((1,) + SHAPE), kinds=('dense',))
