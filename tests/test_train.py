"""The training core (jaxdd.train) against independent computations: hand-written SGD
and Adam in numpy, batch-norm statistics recomputed, slow Python shuffles, numpy losses,
closed-form schedules, an EMA loop, and the member loops against each other."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdd import models
from jaxdd.errors import ConfigError
from jaxdd.train import batches, losses, members, optim
from jaxdd.train import step as step_lib

K = 3
D = 4          # input features: images [N, 2, 2, 1]
SHAPE = (2, 2, 1)


class Linear(nn.Module):
  """logits = flatten(x) W + b: a model whose gradient has a closed form."""

  @nn.compact
  def __call__(self, x, train=False, features=False):
    del train, features
    return nn.Dense(K)(x.reshape(x.shape[0], -1))


class BatchNormNet(nn.Module):
  """Dense(D) -> jaxdd's batch norm (PyTorch semantics) -> Dense(K)."""

  @nn.compact
  def __call__(self, x, train=False, features=False):
    del features
    h = nn.Dense(D, name='hidden')(x.reshape(x.shape[0], -1))
    h = models.layers.Norm('batchnorm', name='norm')(h[:, None, None, :], train=train)
    return nn.Dense(K, name='out')(h[:, 0, 0, :])


def _batch(n=6, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n,) + SHAPE).astype(np.float32)
  y = (np.arange(n) % K).astype(np.int32)
  return x, y


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _ce(y):
  return lambda logits: losses.label_loss(logits, jax.nn.one_hot(y, K), 'ce')


# ----------------------------------------------------------------------------------
# The step.
# ----------------------------------------------------------------------------------


def test_sgd_steps_equal_hand_written_pytorch_sgd():
  """Three steps of SGD with momentum and coupled decay on a linear softmax model equal
  numpy: g = Xᵀ(softmax − onehot)/N, b ← μb + g + wd·p, p ← p − lr·b."""
  x, y = _batch()
  model, lr, mom, wd = Linear(), 0.1, 0.9, 0.01
  tx = optim.sgd(lr, momentum=mom, weight_decay=wd)
  state = step_lib.init_state(model, tx, jax.random.key(0), SHAPE)
  params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                  state.variables['params']['Dense_0'])
  step = jax.jit(lambda s: step_lib.supervised_step(model, tx, s, x, _ce(y)))
  xf, onehot = x.reshape(len(x), -1).astype(np.float64), np.eye(K)[y]
  buf = {k: np.zeros_like(v) for k, v in params.items()}
  for _ in range(3):
    probs = _np_softmax(xf @ params['kernel'] + params['bias'])
    want_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    grads = {'kernel': xf.T @ (probs - onehot) / len(y),
             'bias': (probs - onehot).mean(0)}
    for k in params:
      buf[k] = mom * buf[k] + grads[k] + wd * params[k]
      params[k] = params[k] - lr * buf[k]
    state, loss, logits = step(state)
    assert logits.shape == (len(y), K)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  for k in params:
    np.testing.assert_allclose(state.variables['params']['Dense_0'][k], params[k],
                               rtol=1e-5, atol=1e-6)


def test_batch_norm_step_updates_running_stats_and_trains_in_batch_mode():
  x, y = _batch(n=5, seed=1)
  model, lr = BatchNormNet(), 0.05
  tx = optim.sgd(lr)
  state = step_lib.init_state(model, tx, jax.random.key(3), SHAPE)
  p = state.variables['params']
  assert set(state.variables) == {'params', 'batch_stats'}
  new, loss, _ = jax.jit(lambda s: step_lib.supervised_step(model, tx, s, x, _ce(y)))(
      state)

  # The forward in plain jnp: batch statistics (biased variance) normalise.
  def forward(p):
    h = x.reshape(len(x), -1) @ p['hidden']['kernel'] + p['hidden']['bias']
    mu, var = h.mean(0), ((h - h.mean(0)) ** 2).mean(0)
    h = (h - mu) / jnp.sqrt(var + 1e-5) * p['norm']['scale'] + p['norm']['bias']
    return h @ p['out']['kernel'] + p['out']['bias']

  def ref_loss(p):
    return -jnp.mean(jax.nn.log_softmax(forward(p))[jnp.arange(len(y)), y])

  ref_value, ref_grad = jax.jit(jax.value_and_grad(ref_loss))(p)
  np.testing.assert_allclose(float(loss), float(ref_value), rtol=1e-5)
  want = jax.tree_util.tree_map(lambda a, g: a - lr * g, p, ref_grad)
  for a, b in zip(jax.tree_util.tree_leaves(new.variables['params']),
                  jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Running statistics: 0.9·init + 0.1·(batch mean, unbiased batch variance).
  h = (x.reshape(len(x), -1).astype(np.float64) @ np.asarray(p['hidden']['kernel'])
       + np.asarray(p['hidden']['bias']))
  stats = new.variables['batch_stats']['norm']
  np.testing.assert_allclose(stats['mean'], 0.1 * h.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * h.var(0, ddof=1), rtol=1e-4)


def test_masked_step_equals_the_step_on_the_unpadded_batch():
  """Rows with weight 0 (padding that repeats a real row) change nothing: the same loss
  and update as the step on the 3 real rows (PyTorch's smaller last batch)."""
  x, y = _batch(n=3, seed=2)
  model = Linear()
  tx = optim.sgd(0.1, momentum=0.5, weight_decay=1e-3)
  state = step_lib.init_state(model, tx, jax.random.key(1), SHAPE)
  rows = np.array([0, 1, 2, 2, 2])
  mask = np.array([1, 1, 1, 0, 0], np.float32)
  masked, loss_m, _ = jax.jit(lambda s: step_lib.supervised_step(
      model, tx, s, x[rows], lambda z: losses.ce_rows(z, y[rows]), weights=mask))(state)
  plain, loss_p, _ = jax.jit(lambda s: step_lib.supervised_step(
      model, tx, s, x, _ce(y)))(state)
  np.testing.assert_allclose(float(loss_m), float(loss_p), rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(masked), jax.tree_util.tree_leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # Non-binary weights: the batch loss is Σ w·ce / Σ w.
  w = np.array([0.5, 2.0, 1.0], np.float32)
  _, loss_w, logits = step_lib.supervised_step(model, tx, state, x,
                                               lambda z: losses.ce_rows(z, y), weights=w)
  ce = -np.log(_np_softmax(np.asarray(logits, np.float64))[np.arange(3), y])
  np.testing.assert_allclose(float(loss_w), np.sum(w * ce) / np.sum(w), rtol=1e-5)


def test_init_state_and_cast_like():
  tx = optim.adam(1e-3)
  state = step_lib.init_state(Linear(), tx, jax.random.key(4), SHAPE)
  want = models.init_model(Linear(), jax.random.key(4), SHAPE)
  for a, b in zip(jax.tree_util.tree_leaves(state.variables),
                  jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(a, b)
  assert all(float(jnp.abs(m).max()) == 0 for m in jax.tree_util.tree_leaves(
      state.opt_state) if m.dtype == jnp.float32)
  tree = {'a': np.ones(2, np.float64), 'b': np.ones(3, np.float32)}
  ref = {'a': np.zeros(2, np.float32), 'b': np.zeros(3, np.float16)}
  out = step_lib.cast_like(tree, ref)
  assert out['a'].dtype == np.float32 and out['b'].dtype == np.float16


# ----------------------------------------------------------------------------------
# Optimizers, schedules, EMA.
# ----------------------------------------------------------------------------------


def _updates(tx, grads, params, steps=1):
  state = tx.init(params)
  out = []
  for _ in range(steps):
    u, state = tx.update(grads, state, params)
    out.append(np.asarray(u['w'], np.float64))
  return out


def test_optimizers_first_steps_closed_forms():
  p = {'w': jnp.array([2.0, -1.0, 0.5])}
  g = {'w': jnp.array([0.5, -3.0, 0.0])}
  pn, gn = np.asarray(p['w'], np.float64), np.asarray(g['w'], np.float64)
  # SGD with coupled decay, no momentum: −lr·(g + wd·p) every step.
  for u in _updates(optim.sgd(0.1, weight_decay=0.1), g, p, steps=2):
    np.testing.assert_allclose(u, -0.1 * (gn + 0.1 * pn), rtol=1e-6)
  # Momentum: the second update is −lr·(μ·d + d), d = g + wd·p.
  u1, u2 = _updates(optim.sgd(0.1, momentum=0.9, weight_decay=0.1), g, p, steps=2)
  np.testing.assert_allclose(u2, -0.1 * 1.9 * (gn + 0.1 * pn), rtol=1e-6)
  # Adam's first step is −lr·d/(|d| + eps) with d the coupled-decay gradient ...
  d = gn + 0.1 * pn
  (u,) = _updates(optim.adam(0.01, weight_decay=0.1), g, p)
  np.testing.assert_allclose(u, -0.01 * d / (np.abs(d) + 1e-8), rtol=1e-5, atol=1e-9)
  # ... AdamW's is −lr·(g/(|g| + eps) + wd·p).
  (u,) = _updates(optim.adamw(0.01, weight_decay=0.1), g, p)
  np.testing.assert_allclose(u, -0.01 * (gn / (np.abs(gn) + 1e-8) + 0.1 * pn),
                             rtol=1e-5, atol=1e-9)
  (u,) = _updates(optim.optimizer('adamw', 0.01, weight_decay=0.1), g, p)
  np.testing.assert_allclose(u, -0.01 * (gn / (np.abs(gn) + 1e-8) + 0.1 * pn),
                             rtol=1e-5, atol=1e-9)
  with pytest.raises(ConfigError, match='optimizer must be one of sgd, adam, adamw'):
    optim.optimizer('lion', 0.1)
  # Without decay the optimizers are optax's own, state included (FRePo's pool reads it).
  for ours, theirs in ((optim.adam(0.1), optax.adam(0.1)),
                       (optim.sgd(0.1), optax.sgd(0.1))):
    assert (jax.tree_util.tree_structure(ours.init(p))
            == jax.tree_util.tree_structure(theirs.init(p)))


def test_sgd_equals_plain_gradient_descent_bit_for_bit():
  """optax's p + (−lr)·g is DCrepo's p − lr·g exactly (the inner loops can share it)."""
  rng = np.random.default_rng(5)
  p = {'w': jnp.asarray(rng.normal(size=50), jnp.float32)}
  g = {'w': jnp.asarray(rng.normal(size=50), jnp.float32)}
  tx = optim.sgd(0.0137)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_array_equal(optax.apply_updates(p, u)['w'], p['w'] - 0.0137 * g['w'])


def test_schedules_match_closed_forms():
  steps = np.arange(40)
  decay = optim.step_decay(0.2, 17)
  np.testing.assert_allclose([float(decay(s)) for s in (0, 16, 17, 39)],
                             [0.2, 0.2, 0.02, 0.02], rtol=1e-6)
  spe, epochs = 4, 7
  e = steps // spe                       # past the end too: the cosine goes back up
  got = jax.vmap(optim.per_epoch(0.3, spe, lambda ep: optim.cosine_factor(ep, epochs)))(
      jnp.asarray(steps))
  np.testing.assert_allclose(got, 0.3 * 0.5 * (1 + np.cos(np.pi * e / epochs)),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(optim.cosine_factor(e, 2 * epochs),
                             0.5 * (1 + np.cos(np.pi * e / (2 * epochs))), rtol=1e-5,
                             atol=1e-7)
  got = optim.multistep_factor(e, (3, 5), 0.5)
  np.testing.assert_allclose(got, 0.5 ** ((e >= 3).astype(int) + (e >= 5)), rtol=1e-6)
  np.testing.assert_array_equal(optim.multistep_factor(e, (), 0.5), np.ones(e.shape))


def test_ema_equals_a_loop():
  rng = np.random.default_rng(6)
  seq = [{'a': rng.normal(size=3), 'b': {'c': rng.normal(size=(2, 2))}} for _ in range(5)]
  ema = jax.tree_util.tree_map(jnp.asarray, seq[0])
  want_a, want_c = seq[0]['a'].copy(), seq[0]['b']['c'].copy()
  for p in seq[1:]:
    ema = optim.ema_update(ema, jax.tree_util.tree_map(jnp.asarray, p), 0.7)
    want_a = 0.7 * want_a + 0.3 * p['a']
    want_c = 0.7 * want_c + 0.3 * p['b']['c']
  np.testing.assert_allclose(ema['a'], want_a, rtol=1e-5)
  np.testing.assert_allclose(ema['b']['c'], want_c, rtol=1e-5)


# ----------------------------------------------------------------------------------
# Losses.
# ----------------------------------------------------------------------------------


def test_losses_match_numpy():
  rng = np.random.default_rng(7)
  z = (rng.normal(size=(5, 4)) * 3).astype(np.float32)
  t = (rng.normal(size=(5, 4)) * 3).astype(np.float32)
  y = np.array([0, 3, 1, 1, 2])
  zd = z.astype(np.float64)
  log_p = np.log(_np_softmax(zd))
  probs = _np_softmax(t.astype(np.float64))
  np.testing.assert_allclose(losses.label_loss(z, probs.astype(np.float32), 'ce'),
                             -(probs * log_p).sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.label_loss(z, t, 'soft_ce'),
                             -(probs * log_p).sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.label_loss(z, t, 'mse'),
                             0.5 * ((zd - t) ** 2).sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.ce_rows(z, y), -log_p[np.arange(5), y], rtol=1e-5)
  mask = np.array([1, 0, 1, 1, 0], np.float32)
  np.testing.assert_allclose(losses.masked_mean(losses.ce_rows(z, y), mask),
                             -log_p[[0, 2, 3], y[[0, 2, 3]]].mean(), rtol=1e-5)
  for temp in (1.0, 4.0):
    ps, pt = _np_softmax(zd / temp), _np_softmax(t.astype(np.float64) / temp)
    np.testing.assert_allclose(losses.kl_loss(z, t, temp),
                               np.sum(pt * (np.log(pt) - np.log(ps))) / 5, rtol=1e-5)
  np.testing.assert_allclose(losses.edc_loss(z, t, jnp.asarray(y), 0.025),
                             np.mean((zd - t) ** 2)
                             - 0.025 * log_p[np.arange(5), y].mean(), rtol=1e-5)
  np.testing.assert_array_equal(losses.as_targets(y, 4), np.eye(4)[y])
  assert losses.as_targets(t.astype(np.float16), 4).dtype == jnp.float32
  with pytest.raises(ConfigError, match='label loss must be one of ce, soft_ce, mse'):
    losses.label_loss(z, t, 'hinge')


# ----------------------------------------------------------------------------------
# Batches.
# ----------------------------------------------------------------------------------


def test_epoch_size():
  assert batches.epoch_size(10, 4) == (4, 3)
  assert batches.epoch_size(8, 4) == (4, 2)
  assert batches.epoch_size(3, 256) == (3, 1)


def test_wrap_around_batches_equal_a_slow_loop():
  n, batch = 7, 3
  _, spe = batches.epoch_size(n, batch)
  key = jax.random.key(8)
  rows = jax.jit(jax.vmap(lambda s: batches.step_rows(key, s, n, batch, spe)))(
      jnp.arange(3 * spe))
  for epoch in range(3):
    perm = list(np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n)))
    stream = perm + perm                    # the last batch continues at the start
    seen = set()
    for j in range(spe):
      want = stream[j * batch:(j + 1) * batch]
      np.testing.assert_array_equal(rows[epoch * spe + j], want)
      np.testing.assert_array_equal(
          batches.wrapped_batch(jnp.asarray(perm), j, batch), want)
      seen.update(int(r) for r in want)
    assert seen == set(range(n))            # every row at least once per epoch
  assert not np.array_equal(rows[:spe], rows[spe:2 * spe])   # epochs reshuffle


@pytest.mark.parametrize('count', [9, 5, 1])
def test_masked_batches_equal_a_slow_loop(count):
  n, batch = 9, 4
  rng = np.random.default_rng(count)
  allowed = rng.choice(n, count, replace=False)
  idx = np.zeros(n, np.int32)
  idx[:count] = allowed
  key = jax.random.key(9)
  order = np.asarray(batches.masked_order(key, 2, jnp.asarray(idx), count))
  pos = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), n))
  want_order = [idx[p] for p in pos if p < count]   # allowed positions, in random order
  np.testing.assert_array_equal(order[:count], want_order)
  assert sorted(order[:count]) == sorted(allowed)
  num = int(batches.masked_num_batches(count, batch))
  assert num == math.ceil(count / batch)
  for j in range(num):
    rows, mask = batches.masked_batch(jnp.asarray(order), j, batch, count)
    real = want_order[j * batch:(j + 1) * batch]
    np.testing.assert_array_equal(np.asarray(rows)[:len(real)], real)
    np.testing.assert_array_equal(mask, [1.0] * len(real) + [0.0] * (batch - len(real)))
    assert np.all(np.isin(np.asarray(rows), allowed) | (np.asarray(mask) == 0))


def test_split_batches_equal_slices():
  perm = jnp.asarray(np.random.default_rng(10).permutation(11))
  full, last = batches.split_batches(perm, 4)
  assert full.shape == (2, 4) and last.shape == (3,)
  np.testing.assert_array_equal(np.concatenate([np.ravel(full), last]), perm)
  full, last = batches.split_batches(perm[:8], 4)
  assert full.shape == (2, 4) and last.shape == (0,)


# ----------------------------------------------------------------------------------
# Members.
# ----------------------------------------------------------------------------------


def test_member_keys_and_streams():
  key = members.member_key(7, 3)
  want = jax.random.fold_in(jax.random.key(7), 3)
  np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(want))
  many = members.member_keys(jax.random.key(7), 4)
  for i in range(4):
    np.testing.assert_array_equal(jax.random.key_data(many[i]),
                                  jax.random.key_data(members.member_key(7, i)))
  s = members.streams(key)
  for got, exp in zip(s, jax.random.split(key, 3)):
    np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(exp))
  assert s.init is s[0] and s.aug is s[2]


def test_over_members_vmap_equals_map_and_loop():
  x, y = _batch(seed=11)
  tx = optim.sgd(0.1, momentum=0.9)

  def one(key):   # two SGD steps of a fresh network
    s = step_lib.init_state(Linear(), tx, members.streams(key).init, SHAPE)
    for _ in range(2):
      s, loss, _ = step_lib.supervised_step(Linear(), tx, s, x, _ce(y))
    return s.variables['params'], loss

  keys = members.member_keys(jax.random.key(12), 3)
  out = {how: jax.jit(lambda k, how=how: members.over_members(one, k, how))(keys)
         for how in members.MEMBER_LOOPS}
  for i in range(3):
    alone = jax.jit(one)(keys[i])
    for how in members.MEMBER_LOOPS:
      for a, b in zip(jax.tree_util.tree_leaves(out[how]),
                      jax.tree_util.tree_leaves(alone)):
        np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
  kernel = out['map'][0]['Dense_0']['kernel']
  assert not np.allclose(kernel[0], kernel[1])    # three different networks
  with pytest.raises(ConfigError, match='seed_loop must be one of auto, vmap, map'):
    members.over_members(one, keys, 'pmap')
