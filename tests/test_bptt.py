"""BPTT / RaT-BPTT against slow, independent computations (tiny shapes, float64 where
finite differences need it)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdd import models
from jaxdd.errors import ConfigError
from jaxdd.interfaces import RealBatch, SynData
from jaxdd.objectives import bptt

SHAPE = (8, 8, 1)
K = 3


class _DS:   # the fields the objective's prepare reads
  def __init__(self, n_train=60):
    self.x_train = np.zeros((n_train,) + SHAPE, np.float32)
    self.num_classes = K


def _config(model='convnet', **objective):
  obj = dict(name='bptt', window=2, total_window=2, truncation='fixed', batch_syn=0,
             syn_dsa=False, real_dsa=False, inner_optim='adam', inner_lr=0.05,
             batch_real=4)
  obj.update(objective)
  mdl = dict(name=model)
  if model == 'convnet':
    mdl.update(width=4, depth=1)
  return ml_collections.ConfigDict(dict(ipc=2, model=mdl, objective=obj))


def _data(seed=0, ipc=2, n=4, dtype=jnp.float64):
  rng = np.random.default_rng(seed)
  real = RealBatch(jnp.asarray(rng.normal(size=(K, n) + SHAPE), dtype),
                   jnp.repeat(jnp.arange(K)[:, None], n, axis=1))
  labels = jax.nn.one_hot(jnp.repeat(jnp.arange(K), ipc), K, dtype=dtype)
  labels = labels + jnp.asarray(rng.uniform(0, 0.3, size=labels.shape), dtype)
  images = jnp.asarray(rng.normal(size=(K * ipc,) + SHAPE), dtype)
  return images, labels, real


def _objective(cfg, seed=0):
  obj = bptt.make_bptt(cfg)
  ctx = obj.prepare(_DS(), cfg)
  state = obj.init_state(jax.random.key(seed + 100), ctx)
  return obj, ctx, state


def _obj_loss(obj, ctx, state, key, step=0):
  def f(images, labels, real):
    value, aux = obj.loss(SynData(images, labels, {}), real, key, ctx, step, state)
    return value, aux
  return f


# ----------------------------------------------------------------------------------
# The slow reference: a Python loop of jax.grad steps, hand-written optimizers.
# ----------------------------------------------------------------------------------


def _slow_init(ctx, key):
  init_key, _ = jax.random.split(key)
  variables = models.init_model(ctx['model'], init_key, SHAPE)
  return jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), variables['params'])


def _ce(model, params, x, y):
  logits = model.apply({'params': params}, x, train=True)
  return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))


def _slow_train(model, params, opt, images, labels, steps, optim, lr, eps_root=1e-8,
                momentum=0.9, wd=5e-4):
  """``steps`` full-batch steps; ``opt`` is (t, m, v) for Adam or (buf,) for SGD."""
  tm = jax.tree_util.tree_map
  for _ in range(steps):
    g = jax.grad(_ce, argnums=1)(model, params, images, labels)
    if optim == 'adam':
      t, m, v = opt
      t = t + 1
      m = tm(lambda m_, g_: 0.9 * m_ + 0.1 * g_, m, g)
      v = tm(lambda v_, g_: 0.999 * v_ + 0.001 * g_ * g_, v, g)
      params = tm(lambda p, m_, v_: p - lr * (m_ / (1 - 0.9 ** t)) /
                  (jnp.sqrt(v_ / (1 - 0.999 ** t) + eps_root) + 1e-8), params, m, v)
      opt = (t, m, v)
    else:   # PyTorch SGD: d = g + wd·p; buf = momentum·buf + d (buf = d at first)
      (buf,) = opt
      d = tm(lambda g_, p: g_ + wd * p, g, params)
      buf = d if buf is None else tm(lambda b, d_: momentum * b + d_, buf, d)
      params = tm(lambda p, b: p - lr * b, params, buf)
      opt = (buf,)
  return params, opt


def _slow_opt0(params, optim):
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  return (0, zeros, zeros) if optim == 'adam' else (None,)


def _real_xy(real):
  x = real.images.reshape((-1,) + SHAPE)
  return x, jax.nn.one_hot(real.labels.reshape(-1), K, dtype=x.dtype)


# ----------------------------------------------------------------------------------
# Tests.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('optim', ['adam', 'sgd'])
def test_full_bptt_equals_slow_unroll(optim):
  with jax.enable_x64(True):
    cfg = _config(window=3, total_window=3, inner_optim=optim)
    obj, ctx, state = _objective(cfg)
    images, labels, real = _data()
    key = jax.random.key(7)
    value, grads = jax.jit(jax.value_and_grad(
        lambda s, y: _obj_loss(obj, ctx, state, key)(s, y, real)[0], argnums=(0, 1)))(
            images, labels)

    model = ctx['model']
    rx, ry = _real_xy(real)

    def slow(s, y):
      p0 = _slow_init(ctx, key)
      p, _ = _slow_train(model, p0, _slow_opt0(p0, optim), s, y, 3, optim, 0.05)
      return _ce(model, p, rx, ry)

    v_ref, g_ref = jax.jit(jax.value_and_grad(slow, argnums=(0, 1)))(images, labels)
    np.testing.assert_allclose(float(value), float(v_ref), rtol=1e-10)
    for g, r in zip(grads, g_ref):
      assert np.abs(np.asarray(r)).max() > 1e-6
      np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-7, atol=1e-12)


def test_rat_bptt_gradient_skips_curriculum_and_matches_finite_differences():
  """Random truncation: c steps held constant, then w differentiated steps.

  The objective's gradient must equal (a) the slow window-only gradient started from
  the curriculum's end state as a constant, (b) central finite differences of that
  function; and must differ from the gradient of the whole c + w unroll.
  """
  with jax.enable_x64(True):
    cfg = _config(window=2, total_window=5, min_window=1, truncation='random',
                  complete_random=True)
    obj, ctx, state = _objective(cfg)
    images, labels, real = _data(seed=1)
    key = jax.random.key(3)
    f = _obj_loss(obj, ctx, state, key, step=4)
    (value, aux), g_obj = jax.jit(jax.value_and_grad(lambda s: f(s, labels, real),
                                                     has_aux=True))(images)
    c = int(aux['curriculum'])
    assert 1 <= c <= 3

    model = ctx['model']
    rx, ry = _real_xy(real)
    p0 = _slow_init(ctx, key)
    p_c, opt_c = jax.jit(lambda s: _slow_train(model, p0, _slow_opt0(p0, 'adam'), s,
                                               labels, c, 'adam', 0.05))(images)

    @jax.jit
    def window_only(s):
      p, _ = _slow_train(model, p_c, opt_c, s, labels, 2, 'adam', 0.05)
      return _ce(model, p, rx, ry)

    def whole(s):
      p, _ = _slow_train(model, p0, _slow_opt0(p0, 'adam'), s, labels, c + 2, 'adam',
                         0.05)
      return _ce(model, p, rx, ry)

    v_win, g_win = jax.jit(jax.value_and_grad(window_only))(images)
    np.testing.assert_allclose(float(value), float(v_win), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g_obj), np.asarray(g_win), rtol=1e-7,
                               atol=1e-12)
    g_whole = jax.jit(jax.grad(whole))(images)
    assert np.abs(np.asarray(g_whole - g_obj)).max() > 1e-3 * np.abs(
        np.asarray(g_obj)).max()

    # Central differences of the window-only function along a few pixels.
    rng = np.random.default_rng(0)
    flat = np.asarray(g_obj).ravel()
    eps = 1e-5
    for i in rng.choice(flat.size, 4, replace=False):
      e = np.zeros(flat.size)
      e[i] = eps
      e = jnp.asarray(e.reshape(images.shape))
      fd = (window_only(images + e) - window_only(images - e)) / (2 * eps)
      np.testing.assert_allclose(flat[i], float(fd), rtol=1e-5, atol=1e-9)


def test_full_bptt_with_sampling_and_dsa_matches_finite_differences():
  """batch_syn < N and DSA on both sides: the loss is a fixed function of the images
  given the key, and its gradient is its derivative (nothing is truncated)."""
  with jax.enable_x64(True):
    cfg = _config(window=2, total_window=2, batch_syn=4, syn_dsa=True, real_dsa=True,
                  syn_dsa_strategy='flip_rotate', real_dsa_strategy='flip_rotate')
    obj, ctx, state = _objective(cfg)
    images, labels, real = _data(seed=2)
    key = jax.random.key(11)
    f = jax.jit(lambda s, y: _obj_loss(obj, ctx, state, key)(s, y, real)[0])
    g_s, g_y = jax.jit(jax.grad(f, argnums=(0, 1)))(images, labels)
    eps = 1e-5
    rng = np.random.default_rng(1)
    for arr, grad, which in ((images, g_s, 0), (labels, g_y, 1)):
      flat = np.asarray(grad).ravel()
      assert np.abs(flat).max() > 0
      for i in rng.choice(flat.size, 5, replace=False):
        e = np.zeros(flat.size)
        e[i] = eps
        e = jnp.asarray(e.reshape(arr.shape))
        args_p = (images + e, labels) if which == 0 else (images, labels + e)
        args_m = (images - e, labels) if which == 0 else (images, labels - e)
        fd = (f(*args_p) - f(*args_m)) / (2 * eps)
        np.testing.assert_allclose(flat[i], float(fd), rtol=1e-5, atol=1e-9)


def test_draw_curriculum_bounds_and_redraw_period():
  cfg = bptt.parse(dict(window=2, total_window=6, min_window=1, redraw_every=5))
  key = jax.random.key(0)
  draws = np.array([int(bptt.draw_curriculum(key, s, cfg, 5)) for s in range(200)])
  assert draws.min() == 1 and draws.max() == 4          # both ends are reachable
  periods = draws.reshape(40, 5)
  assert (periods == periods[:, :1]).all()              # constant within a period
  assert len(set(periods[:, 0])) == 4
  # Jitted with a traced step: the same numbers.
  jitted = jax.jit(lambda s: bptt.draw_curriculum(key, s, cfg, 5))
  assert [int(jitted(s)) for s in range(10)] == list(draws[:10])
  # complete_random: redrawn at every step.
  cr = cfg._replace(complete_random=True)
  per_step = [int(bptt.draw_curriculum(key, s, cr, 5)) for s in range(40)]
  assert any(a != b for a, b in zip(per_step[:-1], per_step[1:]))
  assert min(per_step) >= 1 and max(per_step) <= 4
  # Fixed truncation: T - w; full BPTT: 0.
  assert bptt.draw_curriculum(key, 3, cfg._replace(truncation='fixed'), 5) == 4
  full = cfg._replace(truncation='fixed', window=6)
  assert bptt.draw_curriculum(key, 3, full, 5) == 0


def test_objective_reports_its_curriculum_and_redraws_per_real_epoch():
  cfg = _config(window=1, total_window=4, truncation='random', inner_lr=0.01)
  obj, ctx, state = _objective(cfg)
  # 60 train images, 3 classes x batch_real 4 = 12 per step: a redraw every 5 steps.
  assert ctx['redraw_every'] == 5
  images, labels, real = _data(dtype=jnp.float32)
  traces = []

  def loss(s, step):
    traces.append(1)
    return obj.loss(SynData(s, labels, {}), real, jax.random.key(1), ctx, step, state)

  step_fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
  trunc_key = jax.random.wrap_key_data(state['truncation_key'])
  for step in range(7):
    (_, aux), g = step_fn(images, step)
    assert np.isfinite(np.asarray(g)).all()
    assert int(aux['curriculum']) == int(bptt.draw_curriculum(trunc_key, step,
                                                              bptt.parse(
                                                                  cfg.objective), 5))
  assert len(traces) == 1


def test_adam_needs_eps_root_for_meta_gradients():
  """A pixel that is 0 in every synthetic image gives its first-layer weights an exactly
  zero inner gradient; d√v/dv is infinite there, so with eps_root = 0 the meta-gradient
  is NaN, while eps_root > 0 keeps it finite."""
  cfg = _config(model='mlp', window=2, total_window=2)
  obj, ctx, state = _objective(cfg)
  images, labels, real = _data(dtype=jnp.float32)
  images = images.at[:, 0, 0, 0].set(0.0)
  variables = models.init_model(ctx['model'], jax.random.key(0), SHAPE)
  rx, ry = _real_xy(real)
  base = bptt.parse(cfg.objective)

  def grad_with(eps_root):
    c = base._replace(eps_root=eps_root)
    f = lambda s: bptt.unrolled_loss(ctx['model'], variables, s, labels, rx, ry,
                                     jax.random.key(1), 0, c)[0]
    return np.asarray(jax.jit(jax.grad(f))(images))

  assert not np.isfinite(grad_with(0.0)).all()
  g = grad_with(1e-8)
  assert np.isfinite(g).all() and np.abs(g).max() > 0


@pytest.mark.parametrize('objective,field', [
    (dict(window=0), 'window'),
    (dict(window=5, total_window=3), 'total_window'),
    (dict(window=2, total_window=4, min_window=3, truncation='random'), 'min_window'),
    (dict(truncation='sometimes'), 'truncation'),
    (dict(inner_optim='lbfgs'), 'inner_optim'),
    (dict(inner_lr=0.0), 'inner_lr'),
    (dict(eps_root=0.0), 'eps_root'),
    (dict(batch_syn=-1), 'batch_syn'),
    (dict(redraw_every=1.5), 'redraw_every'),
    (dict(label_norm='softmax'), 'label_norm'),
    (dict(syn_dsa=True, syn_dsa_strategy='flip_warp'), 'dsa_strategy'),
])
def test_bad_config_raises(objective, field):
  with pytest.raises(ConfigError, match=field):
    bptt.make_bptt(_config(**objective))


def test_batch_norm_model_raises():
  with pytest.raises(ConfigError, match='batch norm'):
    bptt.make_bptt(_config(model='convnet_bn'))


def test_l1_label_norm():
  y = jnp.array([[2.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(np.asarray(bptt.normalize_targets(y, 'l1')),
                             [[0.5, 0.25, 0.25], [0.0, 0.0, 0.0]])
  assert bptt.normalize_targets(y, 'none') is y
