"""KIP and FRePo against numpy, closed forms, jax.jacobian and a hand-written Adam step.

Tiny shapes: 4x4x1 images, 2-3 classes, width-4 ConvNets or jaxdd's MLP.
"""

import importlib.util

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdd import data as data_lib
from jaxdd import distill, models
from jaxdd.errors import ConfigError
from jaxdd.interfaces import RealBatch, SynData
from jaxdd.objectives import krr
from jaxdd.parameterizations.pixels import make_pixels

SHAPE = (4, 4, 1)
CONV_BN = {'name': 'convnet_bn', 'width': 4, 'depth': 1}


def _skip_without_nt():
  # A guard only (pytest.importorskip would import neural-tangents without nt_compat).
  if importlib.util.find_spec('neural_tangents') is None:
    pytest.skip("neural-tangents not installed (pip install 'jaxdd[nt]')")


class _DS:   # the fields the objectives' prepare reads
  def __init__(self, shape=SHAPE, k=3):
    self.x_train = np.zeros((1,) + shape, np.float32)
    self.num_classes = k


def _config(model=None, **objective):
  return ml_collections.ConfigDict({'ipc': 2, 'model': model or {'name': 'mlp'},
                                   'objective': objective})


def _data(k=3, n=4, ipc=2, seed=0, shape=SHAPE):
  rng = np.random.default_rng(seed)
  real = RealBatch(jnp.asarray(rng.normal(size=(k, n) + shape), jnp.float32),
                   jnp.repeat(jnp.arange(k)[:, None], n, axis=1))
  labels = np.eye(k)[np.repeat(np.arange(k), ipc)] + 0.1 * rng.normal(size=(k * ipc, k))
  syn = SynData(jnp.asarray(rng.normal(size=(k * ipc,) + shape), jnp.float32),
                jnp.asarray(labels, jnp.float32), {})
  return real, syn


def _np_krr_loss(k_ts, k_ss, y_s, y_t, reg):
  k_ts, k_ss, y_s, y_t = (np.asarray(a, np.float64) for a in (k_ts, k_ss, y_s, y_t))
  n = k_ss.shape[0]
  pred = k_ts @ np.linalg.solve(k_ss + reg * np.trace(k_ss) / n * np.eye(n), y_s)
  return 0.5 * np.mean((pred - y_t) ** 2), np.mean(pred.argmax(1) == y_t.argmax(1))


def _np_targets(real, k):
  return np.eye(k)[np.asarray(real.labels).reshape(-1)] - 1.0 / k


def _np_margin(y):
  y = np.asarray(y, np.float64)
  out = []
  for row in y:   # an explicit loop: the two largest entries of each row
    s = sorted(row, reverse=True)
    out.append(min(s[0] - s[1], 1.0 / len(row)))
  return np.mean(out)


def _jacobian(model, variables, x):
  """[n, C, P] Jacobian of the logits w.r.t. the flat parameter vector (jax.jacobian)."""
  vec, unflatten = models.flatten_params(variables['params'])
  f = lambda v: models.apply_model(model, {**variables, 'params': unflatten(v)}, x)[0]
  return np.asarray(jax.jit(jax.jacobian(f))(vec), np.float64)


# ----------------------------------------------------------------------------------
# KRR pieces.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('reg', [1e-6, 1e-2])
def test_krr_predict_equals_numpy_solve(reg):
  rng = np.random.default_rng(0)
  fs, ft, y = rng.normal(size=(5, 7)), rng.normal(size=(6, 7)), rng.normal(size=(5, 3))
  k_ss, k_ts = fs @ fs.T, ft @ fs.T
  want = k_ts @ np.linalg.solve(k_ss + reg * np.trace(k_ss) / 5 * np.eye(5), y)
  with jax.enable_x64(True):   # float64 on both sides: an exact comparison
    got = krr.krr_predict(jnp.asarray(k_ts), jnp.asarray(k_ss), jnp.asarray(y), reg)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9)
  got32 = krr.krr_predict(*(jnp.asarray(a, jnp.float32) for a in (k_ts, k_ss, y)), 1e-2)
  want32 = k_ts @ np.linalg.solve(k_ss + 1e-2 * np.trace(k_ss) / 5 * np.eye(5), y)
  np.testing.assert_allclose(np.asarray(got32), want32, rtol=2e-3, atol=2e-4)


def test_krr_loss_equals_numpy_from_given_kernels():
  rng = np.random.default_rng(1)
  fs, ft = rng.normal(size=(6, 9)), rng.normal(size=(8, 9))
  y_s = rng.normal(size=(6, 3))
  y_t = np.eye(3)[rng.integers(0, 3, 8)] - 1 / 3
  got, acc = krr.krr_loss(*(jnp.asarray(a, jnp.float32) for a in (ft @ fs.T, fs @ fs.T,
                                                                  y_s, y_t)), 1e-3)
  want, want_acc = _np_krr_loss(ft @ fs.T, fs @ fs.T, y_s, y_t, 1e-3)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)
  assert float(acc) == pytest.approx(want_acc)


def test_label_margin_and_label_targets():
  y = np.random.default_rng(2).normal(size=(7, 4)).astype(np.float32)
  y[0] = [0.2, 0.9, 0.1, 0.0]   # margin 0.7 > 1/C: capped at 0.25
  np.testing.assert_allclose(float(krr.label_margin(jnp.asarray(y))), _np_margin(y),
                             rtol=1e-6)
  one_hot = np.eye(20)[np.arange(20) % 20]
  np.testing.assert_allclose(krr.syn_label_targets(jnp.asarray(one_hot), 'center'),
                             one_hot - 0.05, atol=1e-7)
  np.testing.assert_allclose(krr.syn_label_targets(jnp.asarray(one_hot), 'frepo'),
                             (one_hot - 0.05) / np.sqrt(2.0), atol=1e-7)
  np.testing.assert_array_equal(krr.syn_label_targets(jnp.asarray(one_hot), 'as_is'),
                                one_hot)


def test_empirical_ntk_equals_jacobian_product():
  model = models.get_model('convnet', 3, image_shape=SHAPE, width=4, depth=1)
  variables = models.init_model(model, jax.random.key(0), SHAPE)
  x1 = jax.random.normal(jax.random.key(1), (4,) + SHAPE)
  x2 = jax.random.normal(jax.random.key(2), (3,) + SHAPE)
  apply_fn = lambda p, x: models.apply_model(model, {**variables, 'params': p}, x)[0]
  got = jax.jit(krr.empirical_ntk, static_argnums=0)(apply_fn, variables['params'], x1, x2)
  j1, j2 = _jacobian(model, variables, x1), _jacobian(model, variables, x2)
  want = np.einsum('icp,jcp->ij', j1, j2) / 3
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------
# KIP.
# ----------------------------------------------------------------------------------


def test_kip_empirical_ntk_loss_equals_numpy():
  cfg = _config(None, name='kip', kernel='empirical_ntk', reg=1e-4)   # jaxdd's MLP
  obj = krr.make_kip(cfg)
  ctx = obj.prepare(_DS(), cfg)
  real, syn = _data()
  key = jax.random.key(5)
  value, aux = jax.jit(lambda s, r, k: obj.loss(s, r, k, ctx, 0, {}))(syn, real, key)
  # The network the objective draws: init from the step's key itself.
  variables = models.init_model(ctx['model'], key, SHAPE)
  x_t = np.asarray(real.images).reshape((-1,) + SHAPE)
  j = _jacobian(ctx['model'], variables, jnp.concatenate([jnp.asarray(x_t), syn.images]))
  j_t, j_s = j[:len(x_t)], j[len(x_t):]
  k_ts, k_ss = (np.einsum('icp,jcp->ij', a, j_s) / 3 for a in (j_t, j_s))
  want, _ = _np_krr_loss(k_ts, k_ss, np.asarray(syn.labels) - 1 / 3, _np_targets(real, 3),
                         1e-4)
  np.testing.assert_allclose(float(value), want, rtol=2e-3)
  assert float(aux['krr']) == float(value)


def _np_arccos_fc_kernels(x1, x2, w, b):
  """Closed-form NNGP and NTK of Flatten → Dense → ReLU → Dense (NTK param.)."""
  a = np.concatenate([x1, x2]).reshape(len(x1) + len(x2), -1).astype(np.float64)
  s1 = w ** 2 * a @ a.T / a.shape[1] + b ** 2
  d = np.sqrt(np.diag(s1))
  theta = np.arccos(np.clip(s1 / np.outer(d, d), -1, 1))
  relu = np.outer(d, d) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
  s2 = w ** 2 * relu + b ** 2
  ntk = s2 + w ** 2 * s1 * (np.pi - theta) / (2 * np.pi)
  n1 = len(x1)
  return {'nngp': (s2[:n1, n1:], s2[n1:, n1:]), 'ntk': (ntk[:n1, n1:], ntk[n1:, n1:])}


@pytest.mark.parametrize('get', ['ntk', 'nngp'])
def test_kip_nt_loss_equals_numpy_with_closed_form_kernels(get):
  _skip_without_nt()
  cfg = _config(name='kip', kernel=f'nt_{get}', kernel_arch='fc', kernel_depth=1,
                reg=1e-4, W_std=1.5, b_std=0.2)
  obj = krr.make_kip(cfg)
  ctx = obj.prepare(_DS(), cfg)
  real, syn = _data(seed=3)
  value, _ = jax.jit(lambda s, r: obj.loss(s, r, jax.random.key(0), ctx, 0, {}))(syn, real)
  x_t = np.asarray(real.images).reshape((-1,) + SHAPE)
  k_ts, k_ss = _np_arccos_fc_kernels(x_t, np.asarray(syn.images), 1.5, 0.2)[get]
  want, _ = _np_krr_loss(k_ts, k_ss, np.asarray(syn.labels) - 1 / 3, _np_targets(real, 3),
                         1e-4)
  np.testing.assert_allclose(float(value), want, rtol=2e-3)


def _check_gradients(loss_fn, syn, real):
  """Gradients reach images and labels, and match central differences."""
  f = jax.jit(lambda images, labels: loss_fn(syn._replace(images=images, labels=labels),
                                             real))
  g_img, g_lab = jax.jit(jax.grad(f, argnums=(0, 1)))(syn.images, syn.labels)
  for g in (g_img, g_lab):
    assert np.all(np.isfinite(g)) and np.abs(np.asarray(g)).max() > 0
  rng = np.random.default_rng(7)
  # Images: a small step (ReLU kinks and the ridge make the loss curved at 1e-2);
  # labels: the loss is quadratic in them, any step is exact up to rounding.
  for arg, g, eps in ((0, g_img, 1e-3), (1, g_lab, 1e-2)):
    base = [syn.images, syn.labels]
    d = jnp.asarray(rng.normal(size=base[arg].shape), jnp.float32)
    plus, minus = list(base), list(base)
    plus[arg], minus[arg] = base[arg] + eps * d, base[arg] - eps * d
    numeric = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
    analytic = float(jnp.vdot(g, d))
    np.testing.assert_allclose(numeric, analytic, rtol=5e-2, atol=1e-4)


@pytest.mark.parametrize('kernel', ['empirical_ntk', 'nt_ntk'])
def test_kip_gradients_reach_images_and_labels(kernel):
  if kernel.startswith('nt_'):
    _skip_without_nt()
  cfg = _config(None, name='kip', kernel=kernel, kernel_depth=1, reg=1e-3)
  obj = krr.make_kip(cfg)
  ctx = obj.prepare(_DS(), cfg)
  real, syn = _data(k=2, n=3, ipc=2, seed=4)
  _check_gradients(lambda s, r: obj.loss(s, r, jax.random.key(1), ctx, 0, {})[0], syn, real)


# ----------------------------------------------------------------------------------
# FRePo.
# ----------------------------------------------------------------------------------


def _np_mlp_embedding(params, x):
  h = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  for layer in (params['fc_0'], params['fc_1']):
    h = np.maximum(h @ np.asarray(layer['kernel']) + np.asarray(layer['bias']), 0)
  return h


def test_frepo_loss_equals_numpy():
  cfg = _config(name='frepo', pool_size=3, reg=1e-3, label_margin_weight=0.5)
  obj = krr.make_frepo(cfg)
  ctx = obj.prepare(_DS(), cfg)
  state = obj.init_state(jax.random.key(0), ctx)
  real, syn = _data(seed=5)
  value, aux = jax.jit(lambda s, r, st: obj.loss(s, r, jax.random.key(9), ctx, 0, st))(
      syn, real, state)
  m = int(state['member'])
  params = jax.tree_util.tree_map(lambda v: v[m], state['variables'])['params']
  f_t = _np_mlp_embedding(params, np.asarray(real.images).reshape((-1,) + SHAPE))
  f_s = _np_mlp_embedding(params, np.asarray(syn.images))
  y_s = (np.asarray(syn.labels, np.float64) - 1 / 3) / np.sqrt(3 / 10)   # FRePo's init
  want, _ = _np_krr_loss(f_t @ f_s.T, f_s @ f_s.T, y_s, _np_targets(real, 3), 1e-3)
  np.testing.assert_allclose(float(aux['krr']), want, rtol=2e-3)
  np.testing.assert_allclose(float(value), want - 0.5 * _np_margin(y_s), rtol=2e-3)


@pytest.mark.parametrize('pool_update', ['all', 'sampled'])
def test_frepo_update_resets_exactly_at_max_age_else_one_adam_step(pool_update):
  lr, max_age, pool = 1e-2, 5, 3
  cfg = _config(CONV_BN, name='frepo', pool_size=pool, max_age=max_age, lr_net=lr,
                pool_update=pool_update)
  obj = krr.make_frepo(cfg)
  ctx = obj.prepare(_DS(), cfg)
  state = obj.init_state(jax.random.key(0), ctx)
  np.testing.assert_array_equal(state['age'], [0, 1, 3])   # staggered: ⌊i·5/3⌋
  state = dict(state, age=jnp.asarray([max_age, max_age - 1, 0], jnp.int32))
  if pool_update == 'sampled':
    state['member'] = jnp.int32(1)
  real, syn = _data(seed=6)
  key = jax.random.key(42)
  new = jax.jit(lambda st, s, r, k: obj.update_state(s, r, k, ctx, 0, st))(
      state, syn, real, key)

  reset_key, next_key = jax.random.split(key)
  member_keys = jax.random.split(reset_key, pool)
  targets = krr.syn_label_targets(syn.labels, 'frepo')
  model = ctx['model']
  trained = [0, 1, 2] if pool_update == 'all' else [1]
  want_age = {0: 0, 1: max_age, 2: 1}
  for i in range(pool):
    old_vars = jax.tree_util.tree_map(lambda v, i=i: v[i], state['variables'])
    got_vars = jax.tree_util.tree_map(lambda v, i=i: v[i], new['variables'])
    got_opt = jax.tree_util.tree_map(lambda v, i=i: v[i], new['opt_state'])
    if i not in trained:
      jax.tree_util.tree_map(np.testing.assert_array_equal, got_vars, old_vars)
      assert int(new['age'][i]) == int(state['age'][i])
    elif i == 0:   # age == max_age: a fresh network from its documented key, fresh Adam
      fresh = models.init_model(model, member_keys[0], SHAPE)
      jax.tree_util.tree_map(np.testing.assert_array_equal, got_vars, fresh)
      assert int(got_opt[0].count) == 0
      assert all(np.all(np.asarray(l) == 0) for l in jax.tree_util.tree_leaves(got_opt[0].mu))
      assert int(new['age'][0]) == 0
    else:          # one Adam step, written out: m̂ = g, v̂ = g² after one step
      def mse(params, old_vars=old_vars):
        logits, new_vars = models.apply_model(model, {**old_vars, 'params': params},
                                              syn.images, train=True)
        return 0.5 * jnp.mean(jnp.sum((logits - targets) ** 2, -1)), new_vars
      grads, bn_vars = jax.jit(jax.grad(mse, has_aux=True))(old_vars['params'])
      def check(got_p, old_p, g):
        got_p, old_p, g = (np.asarray(a, np.float64) for a in (got_p, old_p, g))
        want = old_p - lr * g / (np.abs(g) + 1e-8)
        # The conv bias in front of batch norm has a gradient of pure rounding noise
        # (~1e-8: BN cancels it), where Adam's g/(|g|+eps) is noise too; there only the
        # step bound |Δ| ≤ lr holds.
        sure = np.abs(g) > 1e-5
        np.testing.assert_allclose(got_p[sure], want[sure], rtol=1e-5, atol=1e-6)
        assert np.all(np.abs(got_p - old_p) <= lr * (1 + 1e-5))

      jax.tree_util.tree_map(check, got_vars['params'], old_vars['params'], grads)
      jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                                     atol=1e-6),
                             got_vars['batch_stats'], bn_vars['batch_stats'])
      assert int(got_opt[0].count) == 1
      assert int(new['age'][i]) == want_age[i]
  assert int(new['member']) == int(jax.random.randint(next_key, (), 0, pool))


def test_frepo_gradients_reach_images_and_labels():
  cfg = _config(CONV_BN, name='frepo', pool_size=2, reg=1e-3)
  obj = krr.make_frepo(cfg)
  ctx = obj.prepare(_DS(k=2), cfg)
  state = obj.init_state(jax.random.key(3), ctx)
  real, syn = _data(k=2, n=3, ipc=2, seed=8)
  _check_gradients(lambda s, r: obj.loss(s, r, jax.random.key(0), ctx, 0, state)[0],
                   syn, real)


def test_frepo_runs_in_the_generic_step_with_learned_labels():
  """Two jitted steps of distill.make_step: the pool state is carried and updated."""
  k, ipc = 2, 2
  cfg = _config(CONV_BN, name='frepo', pool_size=2, max_age=1, pool_update='sampled')
  obj = krr.make_frepo(cfg)
  ctx = obj.prepare(_DS(k=k), cfg)
  rng = np.random.default_rng(0)
  x_train = jnp.asarray(rng.normal(size=(12,) + SHAPE), jnp.float32)
  y_train = np.repeat(np.arange(k), 6)
  param = make_pixels(num_classes=k, ipc=ipc, image_shape=SHAPE, learn_labels=True)
  # m real images per class, class-major (the contract of Parameterization.init).
  sample_real = lambda m: (x_train[np.concatenate([np.arange(m) + 6 * c for c in range(k)])],
                           np.repeat(np.arange(k), m))
  params = {'syn': param.init(jax.random.key(0), sample_real),
            'extras': {}}
  tx = optax.adam(1e-2)
  state = {'params': params, 'opt_state': tx.init(params),
           'objective': obj.init_state(jax.random.key(1), ctx), 'step': jnp.int32(0)}
  step = jax.jit(distill.make_step(param, obj, ctx, tx, 4))
  index = data_lib.build_class_index(y_train, k)
  ages = []
  for _ in range(2):
    state, metrics = step(state, jax.random.key(2), x_train, index)
    assert np.isfinite(float(metrics['loss']))
    ages.append(np.asarray(state['objective']['age']).tolist())
  assert ages[0] != [0, 0] or ages[1] != [0, 0]   # one member aged or was reset
  assert not np.allclose(state['params']['syn']['labels'], params['syn']['labels'])


# ----------------------------------------------------------------------------------
# Configuration errors, before anything is compiled.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('make,field,value', [
    (krr.make_kip, 'kernel', 'rbf'), (krr.make_kip, 'reg', -1.0),
    (krr.make_kip, 'syn_labels', 'onehot'), (krr.make_kip, 'kernel_arch', 'resnet'),
    (krr.make_frepo, 'pool_update', 'random'), (krr.make_frepo, 'pool_size', 0),
    (krr.make_frepo, 'max_age', 2.5), (krr.make_frepo, 'lr_net', 0.0),
    (krr.make_frepo, 'label_margin_weight', -1.0)])
def test_bad_config_raises_naming_the_field(make, field, value):
  extra = {'kernel': 'empirical_ntk'} if make is krr.make_kip and field != 'kernel' else {}
  with pytest.raises(ConfigError, match=f'objective.{field}'):
    make(_config(**{field: value, **extra}))


def test_nt_conv_kernel_too_deep_for_the_images():
  _skip_without_nt()
  cfg = _config(name='kip', kernel='nt_ntk', kernel_depth=3)
  obj = krr.make_kip(cfg)
  with pytest.raises(ConfigError, match='objective.kernel_depth'):
    obj.prepare(_DS(), cfg)   # 4x4 images allow at most 2 halvings


def test_nt_conv_kernel_refuses_x64():
  """jit of neural-tangents' conv kernel with x64 crashes jaxlib >= 0.8: refuse early."""
  _skip_without_nt()
  with jax.enable_x64(True):
    with pytest.raises(ConfigError, match='objective.kernel'):
      krr.make_kip(_config(name='kip', kernel='nt_ntk', kernel_arch='conv'))
