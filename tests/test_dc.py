"""DC / DSA gradient matching against slow, independent computations (tiny shapes)."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdd import distill, models
from jaxdd.errors import ConfigError
from jaxdd.interfaces import RealBatch, SynData
from jaxdd.objectives.dc import dc_loops, gradient_distance, make_dc
from conftest import interrupt_and_resume, load_config

SHAPE = (8, 8, 1)


class _DS:   # the two fields the objective's prepare reads
  def __init__(self, shape, k):
    self.x_train = np.zeros((1,) + shape, np.float32)
    self.num_classes = k


def _config(norm='instancenorm', **objective):
  obj = dict(name='dc', dsa=False, outer_loop=2, inner_loop=1, lr_net=0.01,
             batch_train=256, bn_per_class=16)
  obj.update(objective)
  return ml_collections.ConfigDict(dict(
      ipc=2, model=dict(name='convnet', width=4, depth=1, norm=norm), objective=obj))


def _setup(k=3, n=5, ipc=2, norm='instancenorm', seed=0, **objective):
  """Objective, ctx, a network state, a real batch and a synthetic set."""
  cfg = _config(norm, **objective)
  obj = make_dc(cfg)
  ctx = obj.prepare(_DS(SHAPE, k), cfg)
  state = obj.init_state(jax.random.key(seed), ctx)
  rng = np.random.default_rng(seed)
  real = RealBatch(jnp.asarray(rng.normal(size=(k, n) + SHAPE), jnp.float32),
                   jnp.repeat(jnp.arange(k)[:, None], n, axis=1))
  syn = SynData(jnp.asarray(rng.normal(size=(k * ipc,) + SHAPE), jnp.float32),
                jax.nn.one_hot(jnp.repeat(jnp.arange(k), ipc), k), {})
  return obj, ctx, state, real, syn


# ----------------------------------------------------------------------------------
# The distance, against numpy in PyTorch's layouts.
# ----------------------------------------------------------------------------------


def _np_distance(g_real, g_syn):
  """DCrepo distance_wb summed over tensors, with the gradients put in PyTorch's layout."""
  total = 0.0
  for path, gr in jax.tree_util.tree_leaves_with_path(g_real):
    gs = np.asarray(_get(g_syn, path), np.float64)
    gr = np.asarray(gr, np.float64)
    if gr.ndim == 1:
      continue
    if gr.ndim == 4:   # Flax HWIO -> PyTorch OIHW -> (out, in*h*w)
      gr, gs = (np.transpose(g, (3, 2, 0, 1)).reshape(g.shape[3], -1) for g in (gr, gs))
    else:              # Flax (in, out) -> PyTorch (out, in)
      gr, gs = gr.T, gs.T
    cos = (gr * gs).sum(-1) / (np.linalg.norm(gr, axis=-1) * np.linalg.norm(gs, axis=-1)
                               + 1e-6)
    total += np.sum(1 - cos)
  return total


def _get(tree, path):
  for p in path:
    tree = tree[p.key]
  return tree


def _grad_tree(rng, scale=1.0):
  return {'conv': {'kernel': rng.normal(size=(3, 3, 2, 4)) * scale,
                   'bias': rng.normal(size=(4,))},
          'dense': {'kernel': rng.normal(size=(5, 3)), 'bias': rng.normal(size=(3,))},
          'norm': {'scale': rng.normal(size=(4,))}}


def test_gradient_distance_matches_numpy_and_ignores_1d_tensors():
  rng = np.random.default_rng(0)
  g_real, g_syn = _grad_tree(rng), _grad_tree(rng, scale=0.3)

  def as_jnp(t):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), t)

  value = float(gradient_distance(as_jnp(g_real), as_jnp(g_syn)))
  np.testing.assert_allclose(value, _np_distance(g_real, g_syn), rtol=1e-5)
  # Only the 1-D tensors change: the distance does not.
  other = _grad_tree(np.random.default_rng(1))
  g_syn2 = jax.tree_util.tree_map(lambda a, b: b if a.ndim == 1 else a, g_syn, other)
  assert float(gradient_distance(as_jnp(g_real), as_jnp(g_syn2))) == value
  rows = 4 + 3   # conv output channels + dense output units
  np.testing.assert_allclose(float(gradient_distance(as_jnp(g_real), as_jnp(g_real))), 0.0,
                             atol=1e-5)
  neg = jax.tree_util.tree_map(lambda x: -2.0 * x, g_real)
  np.testing.assert_allclose(float(gradient_distance(as_jnp(g_real), as_jnp(neg))),
                             2.0 * rows, rtol=1e-5)


def test_gradient_distance_of_a_zero_row_is_one_with_a_finite_gradient():
  # A unit inactive on all synthetic images gives a zero gradient row; sqrt'(0) must not
  # turn the image gradient into NaN (PyTorch's norm has gradient 0 there).
  rng = np.random.default_rng(2)
  g_real = {'k': jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)}
  g_syn = {'k': jnp.asarray(rng.normal(size=(5, 3)), jnp.float32).at[:, 1].set(0.0)}
  value = gradient_distance(g_real, g_syn)
  expected = _np_distance(jax.tree_util.tree_map(np.asarray, g_real),
                          jax.tree_util.tree_map(np.asarray, g_syn))
  np.testing.assert_allclose(float(value), expected, rtol=1e-5)
  grad = jax.grad(lambda g: gradient_distance(g_real, g))(g_syn)
  assert np.isfinite(np.asarray(grad['k'])).all()


# ----------------------------------------------------------------------------------
# The loss, against an explicit per-class computation.
# ----------------------------------------------------------------------------------


def _slow_loss(model, variables, real, syn_images, syn_labels, train):
  """Per class: jax.grad of the CE on that class's data, then the numpy distance."""
  k = real.images.shape[0]
  xs = np.asarray(syn_images).reshape((k, -1) + SHAPE)
  ys = np.asarray(syn_labels).reshape((k, -1, syn_labels.shape[-1]))
  extra = {key: v for key, v in variables.items() if key != 'params'}

  def ce_hard(params, x, c):
    logits = model.apply({'params': params, **extra}, x, train=train)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.full((x.shape[0],), c)).mean()

  def ce_soft(params, x, y):
    logits = model.apply({'params': params, **extra}, x, train=train)
    return optax.softmax_cross_entropy(logits, y).mean()

  total = 0.0
  for c in range(k):
    g_real = jax.grad(ce_hard)(variables['params'], real.images[c], c)
    g_syn = jax.grad(ce_soft)(variables['params'], jnp.asarray(xs[c]), jnp.asarray(ys[c]))
    total += _np_distance(g_real, g_syn)
  return total


def test_dc_loss_matches_a_slow_per_class_computation_with_soft_labels():
  obj, ctx, state, real, syn = _setup()
  soft = jax.nn.softmax(jnp.asarray(np.random.default_rng(3).normal(size=syn.labels.shape)))
  syn = syn._replace(labels=soft.astype(jnp.float32))
  value, aux = obj.loss(syn, real, jax.random.key(0), ctx, 0, state)
  expected = _slow_loss(ctx['model'], state['variables'], real, syn.images, syn.labels,
                        train=True)
  np.testing.assert_allclose(float(value), expected, rtol=1e-4)
  assert float(aux['dc']) == float(value)


def test_dc_gradient_reaches_only_the_synthetic_images_and_matches_fd():
  obj, ctx, state, real, syn = _setup(k=2, n=3, ipc=2, seed=1)

  @jax.jit   # one compile per dtype; op by op, the second-order gradient took ~25 s
  def f(s, r, st):
    return obj.loss(syn._replace(images=s), real._replace(images=r), jax.random.key(0),
                    ctx, 0, st)[0]

  g_syn, g_real = jax.jit(jax.grad(f, argnums=(0, 1)))(syn.images, real.images, state)
  assert float(jnp.abs(g_real).max()) == 0.0          # real gradients are constants
  assert np.isfinite(np.asarray(g_syn)).all() and float(jnp.abs(g_syn).max()) > 0
  with jax.enable_x64(True):
    st64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), state)
    s64, r64 = jnp.asarray(syn.images, jnp.float64), jnp.asarray(real.images, jnp.float64)
    direction = jnp.asarray(np.random.default_rng(4).normal(size=syn.images.shape))
    eps = 1e-5
    fd = (f(s64 + eps * direction, r64, st64) - f(s64 - eps * direction, r64, st64)) / (
        2 * eps)
    analytic = jnp.vdot(jax.jit(jax.grad(f))(s64, r64, st64), direction)
    np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-5)
    np.testing.assert_allclose(float(jnp.vdot(g_syn, direction)), float(fd), rtol=1e-3)


def test_dsa_shares_one_transform_per_class_between_real_and_synthetic():
  """Synthetic images equal to the real ones match (loss ~0: only the 1e-6 of the cosine's
  denominator is left) under Siamese DSA, whichever transform each class draws."""
  obj, ctx, state, real, _ = _setup(k=2, n=2, ipc=2, dsa=True)
  syn = SynData(real.images.reshape((-1,) + SHAPE), jax.nn.one_hot(real.labels.ravel(), 2),
                {})
  loss = jax.jit(lambda key: obj.loss(syn, real, key, ctx, 0, state)[0])
  for seed in range(3):
    assert float(loss(jax.random.key(seed))) < 1e-2
  shuffled = syn._replace(images=syn.images[::-1])
  assert float(obj.loss(shuffled, real, jax.random.key(0), ctx, 0, state)[0]) > 1.0


# ----------------------------------------------------------------------------------
# Batch norm: statistics from the real images, frozen for both gradients.
# ----------------------------------------------------------------------------------


def _real_bn_stats(model, variables, real_images, m):
  x = real_images[:, :m].reshape((-1,) + SHAPE)
  _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  return {**variables, **updates}


def test_bn_matching_uses_running_statistics_of_the_real_images():
  m = 3
  obj, ctx, state, real, syn = _setup(k=3, n=5, norm='batchnorm', bn_per_class=m)
  model, variables = ctx['model'], state['variables']
  assert models.has_batch_norm(variables)

  def loss(s, r):
    return float(obj.loss(s, r, jax.random.key(0), ctx, 0, state)[0])

  frozen = _real_bn_stats(model, variables, real.images, m)
  expected = _slow_loss(model, frozen, real, syn.images, syn.labels, train=False)
  np.testing.assert_allclose(loss(syn, real), expected, rtol=1e-4)
  # Other synthetic images: the same real statistics.
  syn2 = syn._replace(images=syn.images * 0.5 + 1.0)
  np.testing.assert_allclose(
      loss(syn2, real), _slow_loss(model, frozen, real, syn2.images, syn2.labels, False),
      rtol=1e-4)
  # Statistics of the synthetic images instead would give another value.
  from_syn = {**variables, **model.apply(variables, syn.images, train=True,
                                         mutable=['batch_stats'])[1]}
  assert abs(_slow_loss(model, from_syn, real, syn.images, syn.labels, False)
             - expected) > 1e-3
  # Reordering each class's real images leaves the real gradients (class means) as they
  # are but changes which m images set the statistics: the loss follows them.
  perm = real._replace(images=real.images[:, ::-1])
  frozen_perm = _real_bn_stats(model, variables, perm.images, m)
  np.testing.assert_allclose(
      loss(syn, perm), _slow_loss(model, frozen_perm, perm, syn.images, syn.labels, False),
      rtol=1e-4)
  assert abs(loss(syn, perm) - loss(syn, real)) > 1e-4


# ----------------------------------------------------------------------------------
# The outer/inner schedule.
# ----------------------------------------------------------------------------------


def _slow_train(model, variables, real, images, labels, key, epochs, batch, lr, m):
  """DCrepo's schedule step by step: BN statistics from real, then SGD epochs."""
  if 'batch_stats' in variables:
    variables = _real_bn_stats(model, variables, real.images, m)
  params, stats = variables['params'], variables.get('batch_stats')
  n = images.shape[0]
  for e in range(epochs):
    perm_key, _ = jax.random.split(jax.random.fold_in(key, e))
    perm = np.asarray(jax.random.permutation(perm_key, n))
    for start in range(0, n, batch):
      idx = perm[start:start + batch]

      def ce(p):
        v = {'params': p} if stats is None else {'params': p, 'batch_stats': stats}
        if stats is None:
          logits, new = model.apply(v, images[idx], train=True), None
        else:
          logits, new = model.apply(v, images[idx], train=True, mutable=['batch_stats'])
        loss = optax.softmax_cross_entropy_with_integer_labels(
            logits, jnp.argmax(labels[idx], -1)).mean()
        return loss, new

      grads, new = jax.grad(ce, has_aux=True)(params)
      params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
      if new is not None:
        stats = new['batch_stats']
  return {'params': params} if stats is None else {'params': params, 'batch_stats': stats}


@pytest.mark.parametrize('norm', ['instancenorm', 'batchnorm'])
def test_update_state_is_reset_or_inner_sgd_epochs(norm):
  # 6 synthetic images, batches of 4: each epoch is a batch of 4 and a last one of 2.
  obj, ctx, state, real, syn = _setup(k=3, n=5, ipc=2, norm=norm, outer_loop=3,
                                      inner_loop=2, batch_train=4, bn_per_class=3)
  model = ctx['model']
  key = jax.random.key(7)
  fresh_key, train_key = jax.random.split(key)
  update = jax.jit(lambda st, step: obj.update_state(syn, real, key, ctx, step, st))
  fresh = models.init_model(model, fresh_key, SHAPE)
  slow = _slow_train(model, state['variables'], real, syn.images, syn.labels, train_key,
                     epochs=2, batch=4, lr=0.01, m=3)
  for step in range(7):
    got = update(state, step)['variables']
    if (step + 1) % 3 == 0:   # the iteration is over: a fresh network
      jax.tree_util.tree_map(np.testing.assert_array_equal, got, fresh)
    else:                     # inner_loop epochs on the synthetic set
      jax.tree_util.tree_map(
          lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), got, slow)
  moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                 slow['params'], state['variables']['params'])
  assert max(jax.tree_util.tree_leaves(moved)) > 1e-4


def test_update_state_with_outer_loop_one_always_resets():
  obj, ctx, state, real, syn = _setup(outer_loop=1, inner_loop=1)
  key = jax.random.key(3)
  got = obj.update_state(syn, real, key, ctx, jnp.int32(0), state)
  fresh = models.init_model(ctx['model'], jax.random.split(key)[0], SHAPE)
  jax.tree_util.tree_map(np.testing.assert_array_equal, got['variables'], fresh)


def test_config_errors_and_dcrepo_loops():
  assert dc_loops(1) == (1, 1) and dc_loops(10) == (10, 50) and dc_loops(50) == (50, 10)
  assert dc_loops(7, 3, 4) == (3, 4)
  with pytest.raises(ConfigError, match='ipc 7'):
    dc_loops(7)
  with pytest.raises(ConfigError, match='objective.inner_loop'):
    make_dc(_config(inner_loop=0))
  with pytest.raises(ConfigError, match='objective.lr_net'):
    make_dc(_config(lr_net=-1.0))
  cfg = _config()
  del cfg.objective['outer_loop']
  cfg.ipc = 10
  make_dc(cfg)   # the loops default to DCrepo's table


# ----------------------------------------------------------------------------------
# End to end through the generic loop, with resume.
# ----------------------------------------------------------------------------------


def _digits_dc(steps=5):
  config = load_config('quickstart', 'runlocal')
  config.ipc = 2
  config.steps = steps
  config.checkpoint_every = 3
  config.log_every = 1
  config.model.update(width=8, depth=2)
  config.objective = ml_collections.ConfigDict(dict(
      name='dc', dsa=False, batch_real=8, outer_loop=2, inner_loop=1, lr_net=0.01,
      batch_train=256, bn_per_class=16))
  config.optim.images.lr = 0.1
  return config


def test_train_and_evaluate_with_dc_resumes_identically(tmp_path, monkeypatch):
  config = _digits_dc()
  distill.train_and_evaluate(config, str(tmp_path / 'a'), evaluate=False)
  text = (tmp_path / 'a' / 'metrics.jsonl').read_text()
  metrics = [json.loads(line) for line in text.splitlines()]
  assert [m['step'] for m in metrics] == [1, 2, 3, 4, 5]
  assert all(np.isfinite(m['loss']) and m['dc'] > 0 for m in metrics)

  # Interrupted after the checkpoint at step 3, which holds a network trained in the
  # middle of an iteration: the resumed run must restore it to end identically.
  interrupt_and_resume(monkeypatch, config, str(tmp_path / 'b'))
  with np.load(tmp_path / 'a' / 'distilled.npz') as a, \
       np.load(tmp_path / 'b' / 'distilled.npz') as b:
    np.testing.assert_array_equal(a['images'], b['images'])
