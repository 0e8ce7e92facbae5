"""Trajectory matching (MTT / DATM / PAD) against slow, independent computations.

Tiny shapes: 3 classes, 8x8x1 images, a hand-made buffer; ConvNet width 8 depth 1 where
the convolution matters (the slow loop, finite differences, DATM's init) and the MLP
elsewhere, because XLA:CPU compiles a grad-of-grad scan of the MLP ~3x faster.
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdd import models
from jaxdd.errors import ConfigError
from jaxdd.interfaces import SynData
from jaxdd.objectives import trajectory_loss as tm
from jaxdd.objectives import trajectory_matching as mtt

SHAPE = (8, 8, 1)
K = 3
# XLA:CPU's backend optimisations double the compile time of these small grad-of-grad
# scans and buy nothing at this size.
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}


def _jit(f, **kw):
  return jax.jit(f, compiler_options=FAST_COMPILE, **kw)


def _loss_fn(ctx, opts):
  """Jitted (images, labels, syn_lr, key, step) -> (loss, aux) of trajectory_loss."""
  return _jit(lambda x, y, lr, key, step: tm.trajectory_loss(
      SynData(x, y, {'syn_lr': lr}), key, ctx['trajectories'], ctx['apply_train'], step,
      opts))


class Buffer(NamedTuple):   # the fields of experts.Buffer that the objective reads
  trajectories: jnp.ndarray
  unflatten: Callable
  spec: list
  meta: dict


def _unflatten_fn(spec):
  """Flat -> params dict without casting (so a float64 vector stays float64)."""
  def unflatten(v):
    out = {}
    for path, shape, offset in spec:
      node = out
      parts = path.split('/')
      for p in parts[:-1]:
        node = node.setdefault(p, {})
      node[parts[-1]] = v[offset:offset + math.prod(shape)].reshape(shape)
    return out
  return unflatten


def _setup(num_experts=2, epochs=4, n_per_class=2, seed=0, dtype=np.float32,
           arch='mlp'):
  """Model, a buffer of random-walk trajectories around a real init, a synthetic set."""
  kw = dict(width=8, depth=1) if arch == 'convnet' else {}
  model = models.get_model(arch, K, image_shape=SHAPE, **kw)
  params = models.init_model(model, jax.random.key(seed), SHAPE)['params']
  spec = models.param_spec(params)
  flat, _ = models.flatten_params(params)
  rng = np.random.default_rng(seed)
  p = flat.shape[0]
  steps = rng.normal(scale=0.05, size=(num_experts, epochs, p))
  traj = np.concatenate([np.zeros((num_experts, 1, p)), np.cumsum(steps, 1)], 1)
  traj = (np.asarray(flat, np.float64)[None, None] + traj).astype(dtype)
  buffer = Buffer(jnp.asarray(traj), _unflatten_fn(spec), spec, {})
  n = K * n_per_class
  images = jnp.asarray(rng.normal(size=(n,) + SHAPE), dtype)
  labels = jax.nn.one_hot(np.repeat(np.arange(K), n_per_class), K, dtype=dtype)
  return model, buffer, images, labels


def _opts(**kw):
  base = dict(syn_steps=3, expert_epochs=2, max_start_epoch=2, min_start_epoch=1,
              dsa=False, checkpoint='none')
  base.update(kw)
  return tm.parse(base)


def _syn(images, labels, lr=0.05):
  return SynData(images, labels, {'syn_lr': jnp.asarray(lr, images.dtype)})


def _slow_student(model, params, images, targets, lr, batches, soft=False):
  """Plain Python loop of jax.grad SGD steps on the params dict (batches: index lists)."""
  def ce(prm, x, y):
    logits = model.apply({'params': prm}, x, train=True)
    probs = jax.nn.softmax(y) if soft else y
    return -jnp.mean(jnp.sum(probs * jax.nn.log_softmax(logits), -1))
  for b in batches:
    g = jax.grad(ce)(params, images[np.asarray(b)], targets[np.asarray(b)])
    params = jax.tree_util.tree_map(lambda a, d: a - lr * d, params, g)
  return params


def _flat64(params, spec):
  out = np.zeros(spec[-1][2] + math.prod(spec[-1][1]))
  for path, shape, offset in spec:
    leaf = params
    for part in path.split('/'):
      leaf = leaf[part]
    out[offset:offset + math.prod(shape)] = np.asarray(leaf, np.float64).ravel()
  return out


# ----------------------------------------------------------------------------------
# The loss against a slow loop; the meta-gradient against finite differences.
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize('arch,soft', [('convnet', False), ('mlp', True)])
def test_loss_matches_slow_loop(arch, soft):
  model, buffer, images, labels = _setup(num_experts=1, arch=arch)
  if soft:   # DATM's learned logits
    labels = jnp.asarray(np.random.default_rng(1).normal(size=labels.shape) * 3, jnp.float32)
  opts = _opts(label_loss='soft_ce' if soft else 'ce')
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  value, aux = _loss_fn(ctx, opts)(images, labels, 0.05, jax.random.key(3), 0)
  # One expert, window [1, 2): t = 1; the whole set per step (its order is irrelevant).
  traj = np.asarray(buffer.trajectories, np.float64)
  start = buffer.unflatten(jnp.asarray(traj[0, 1], jnp.float32))
  theta = _slow_student(model, start, images, labels, 0.05, [np.arange(6)] * 3, soft)
  theta = _flat64(theta, buffer.spec)
  expected = np.sum((theta - traj[0, 3]) ** 2) / np.sum((traj[0, 1] - traj[0, 3]) ** 2)
  np.testing.assert_allclose(float(value), expected, rtol=2e-5)
  assert float(aux['start_epoch']) == 1.0 and float(aux['mtt']) == float(value)
  np.testing.assert_allclose(float(aux['syn_lr']), 0.05)


def test_soft_ce_differs_from_ce():
  model, buffer, images, _ = _setup(num_experts=1)
  logits = jnp.asarray(np.random.default_rng(2).normal(size=(6, K)) * 2, jnp.float32)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  f = lambda kind: float(_loss_fn(ctx, _opts(label_loss=kind))(
      images, logits, 0.05, jax.random.key(0), 0)[0])
  assert abs(f('ce') - f('soft_ce')) > 1e-4 * abs(f('ce'))


def test_unroll_with_minibatches_matches_slow_loop():
  """A set of 7 with batch_syn 3: chunks 3, 3, 1 (padded, weighted 0)."""
  model, buffer, _, _ = _setup(num_experts=1)
  rng = np.random.default_rng(4)
  images = jnp.asarray(rng.normal(size=(7,) + SHAPE), jnp.float32)
  labels = jax.nn.one_hot(rng.integers(0, K, 7), K)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  idx, weight = tm.minibatch_schedule(jax.random.key(5), 7, 3, 4)
  theta0 = buffer.trajectories[0, 1]
  out = _jit(lambda *a: tm.unroll(*a, ctx['apply_train'], _opts()))(
      theta0, 0.1, images, labels, idx, weight, jax.random.split(jax.random.key(0), 4))
  batches = [np.asarray(i)[np.asarray(w) > 0] for i, w in zip(idx, weight)]
  assert [len(b) for b in batches] == [1, 3, 3, 1]
  slow = _slow_student(model, buffer.unflatten(theta0), images, labels, 0.1, batches)
  np.testing.assert_allclose(np.asarray(out), _flat64(slow, buffer.spec), rtol=1e-5,
                             atol=1e-6)


def test_minibatch_schedule_is_mtts_pop_order():
  key, n, b, steps = jax.random.key(7), 7, 3, 8
  idx, weight = tm.minibatch_schedule(key, n, b, steps)
  chunks, expected = [], []
  epoch = 0
  for _ in range(steps):   # MTT: if not chunks: split a new permutation; chunks.pop()
    if not chunks:
      perm = list(np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n)))
      chunks = [perm[i:i + b] for i in range(0, n, b)]
      epoch += 1
    expected.append(chunks.pop())
  for i, (row, w) in enumerate(zip(np.asarray(idx), np.asarray(weight))):
    assert list(row[w > 0]) == expected[i]
    np.testing.assert_allclose(w[w > 0], 1.0 / len(expected[i]))
    assert np.all(w[len(expected[i]):] == 0)


def test_meta_gradient_matches_finite_differences():
  with jax.enable_x64(True):
    model, buffer, images, labels = _setup(num_experts=1, dtype=np.float64,
                                           arch='convnet')
    ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
    opts = _opts()

    def loss_fn(x, lr):
      syn = SynData(x, labels, {'syn_lr': lr})
      return tm.trajectory_loss(syn, jax.random.key(0), ctx['trajectories'],
                                ctx['apply_train'], 0, opts)[0]

    loss = _jit(loss_fn)   # compiled once for the four evaluations
    lr = jnp.float64(0.3)
    gx, glr = _jit(jax.grad(loss_fn, argnums=(0, 1)))(images, lr)
    v = jnp.asarray(np.random.default_rng(8).normal(size=images.shape))
    eps = 1e-5
    fd_x = (loss(images + eps * v, lr) - loss(images - eps * v, lr)) / (2 * eps)
    fd_lr = (loss(images, lr + eps) - loss(images, lr - eps)) / (2 * eps)
    assert abs(float(jnp.vdot(gx, v))) > 1e-6   # the check below is not vacuous
    np.testing.assert_allclose(float(jnp.vdot(gx, v)), float(fd_x), rtol=1e-5)
    np.testing.assert_allclose(float(glr), float(fd_lr), rtol=1e-5)


def _meta_gradients(ctx, images, labels, key, opts_list):
  """(loss, (d/d images, d/d syn_lr)) of the trajectory loss under each MTTOptions."""
  results = []
  for opts in opts_list:

    def loss(x, lr, opts=opts):
      return tm.trajectory_loss(_syn(x, labels, lr), key, ctx['trajectories'],
                                ctx['apply_train'], 0, opts)[0]

    results.append(_jit(jax.value_and_grad(loss, argnums=(0, 1)))(images, 0.05))
  return results


def _assert_all_agree(results, value_rtol, grad_atol):
  """Every result equals the first (whose image gradient is not zero)."""
  (v0, (gx0, gl0)), others = results[0], results[1:]
  assert float(jnp.abs(gx0).sum()) > 0
  for v, (gx, gl) in others:
    np.testing.assert_allclose(float(v), float(v0), rtol=value_rtol)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(gx0), rtol=1e-4,
                               atol=grad_atol)
    np.testing.assert_allclose(float(gl), float(gl0), rtol=1e-4)


def test_checkpoint_policies_agree():
  """5 steps (nested: a segment of 3 and a remainder of 2), DSA on, minibatches of 4."""
  model, buffer, images, labels = _setup(num_experts=2, n_per_class=3)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  opts_list = [_opts(syn_steps=5, batch_syn=4, dsa=True, dsa_strategy='crop_flip',
                     checkpoint=policy, min_start_epoch=0) for policy in tm.CHECKPOINTS]
  results = _meta_gradients(ctx, images, labels, jax.random.key(11), opts_list)
  _assert_all_agree(results, value_rtol=1e-6, grad_atol=1e-7)


def test_grad_chunks_give_the_same_loss_and_meta_gradient():
  """A ConvNet student (instance norm), DSA on, minibatches of 6 in 1, 2 and 3 chunks."""
  model, buffer, images, labels = _setup(num_experts=2, n_per_class=3, arch='convnet')
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  opts_list = [_opts(syn_steps=3, batch_syn=6, dsa=True, dsa_strategy='crop_flip',
                     checkpoint='step', min_start_epoch=0, grad_chunks=chunks)
               for chunks in (1, 2, 3)]
  results = _meta_gradients(ctx, images, labels, jax.random.key(5), opts_list)
  _assert_all_agree(results, value_rtol=1e-5, grad_atol=1e-6)


def test_grad_chunks_that_do_not_fit_are_refused():
  model, buffer, images, labels = _setup(num_experts=2, n_per_class=3, arch='convnet')
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  opts = _opts(batch_syn=6, grad_chunks=4, min_start_epoch=0)
  with pytest.raises(ConfigError, match='objective.grad_chunks'):
    tm.trajectory_loss(_syn(images, labels), jax.random.key(0), ctx['trajectories'],
                       ctx['apply_train'], 0, opts)
  cfg = ml_collections.ConfigDict(dict(
      objective=dict(syn_steps=3, expert_epochs=2, max_start_epoch=5, grad_chunks=2),
      model=dict(name='convnet', norm='batchnorm')))
  with pytest.raises(ConfigError, match="grad_chunks=2.*batchnorm"):
    mtt.make_mtt(cfg)
  cfg.model.norm = 'instancenorm'
  mtt.make_mtt(cfg)


# ----------------------------------------------------------------------------------
# PAD's masks.
# ----------------------------------------------------------------------------------


def _vectors(p=50, seed=9):
  rng = np.random.default_rng(seed)
  return tuple(rng.normal(size=p) for _ in range(3))


def test_depth_mask_drops_the_first_fraction():
  theta, start, target = _vectors()
  ratio = 0.3
  k = int(ratio * 50)
  value, grad = jax.value_and_grad(tm.matching_ratio)(
      jnp.asarray(theta), jnp.asarray(start), jnp.asarray(target), 'depth', ratio)
  expected = (np.sum((theta[k:] - target[k:]) ** 2)
              / np.sum((start[k:] - target[k:]) ** 2))
  np.testing.assert_allclose(float(value), expected, rtol=1e-6)
  contributing = np.flatnonzero(np.asarray(grad) != 0)
  np.testing.assert_array_equal(contributing, np.arange(k, 50))


def test_smallest_error_mask_drops_the_k_smallest_errors():
  theta, start, target = _vectors(seed=10)
  ratio = 0.4
  err = (theta - target) ** 2
  kept = np.sort(np.argsort(err)[int(ratio * 50):])
  value, grad = jax.value_and_grad(tm.matching_ratio)(
      jnp.asarray(theta), jnp.asarray(start), jnp.asarray(target), 'smallest_error', ratio)
  expected = np.sum(err[kept]) / np.sum(((start - target) ** 2)[kept])
  np.testing.assert_allclose(float(value), expected, rtol=1e-6)
  np.testing.assert_array_equal(np.flatnonzero(np.asarray(grad) != 0), kept)
  assert len(kept) == 30 and err[kept].min() >= np.delete(err, kept).max()


def test_no_mask_is_plain_ratio():
  theta, start, target = _vectors(seed=12)
  value = tm.matching_ratio(jnp.asarray(theta), jnp.asarray(start), jnp.asarray(target))
  np.testing.assert_allclose(
      float(value), np.sum((theta - target) ** 2) / np.sum((start - target) ** 2), rtol=1e-6)


# ----------------------------------------------------------------------------------
# Schedules, skip rule, DATM's initialisation.
# ----------------------------------------------------------------------------------


def test_start_window_bounds():
  opts = _opts(min_start_epoch=1, max_start_epoch=20, max_start_epoch_initial=10,
               expansion_end_step=1000)
  for step in (0, 1, 99, 100, 550, 999, 1000, 1001, 5000):
    low, high = tm.start_window(step, opts)
    ref = min(10 + int((20 - 10) * step / 1000), 20)   # DATM.py's Upper_Bound
    assert (int(low), int(high)) == (1, ref)
  low, high = tm.start_window(123, _opts(max_start_epoch=7, min_start_epoch=2))
  assert (int(low), int(high)) == (2, 7)


def test_sampled_start_epochs_stay_in_the_window():
  model, buffer, images, labels = _setup(num_experts=2, epochs=6)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  opts = _opts(syn_steps=1, expert_epochs=2, min_start_epoch=0, max_start_epoch=4,
               max_start_epoch_initial=1, expansion_end_step=10)
  loss = _loss_fn(ctx, opts)
  f = lambda key, step: loss(images, labels, 0.05, key, step)[1]['start_epoch']
  early = {int(f(jax.random.key(i), 0)) for i in range(20)}
  late = {int(f(jax.random.key(i), 50)) for i in range(40)}
  assert early == {0}                 # window [0, 1) before the expansion
  assert late == {0, 1, 2, 3}         # window [0, 4) after it


def test_skip_update_flag():
  model, buffer, images, labels = _setup(num_experts=1)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  run = lambda thr: _loss_fn(ctx, _opts(threshold=thr))(images, labels, 0.05,
                                                         jax.random.key(0), 0)
  value = float(run(0.0)[0])
  assert float(run(0.0)[1]['skip_update']) == 0.0
  assert float(run(value * 0.5)[1]['skip_update']) == 1.0
  assert float(run(value * 2.0)[1]['skip_update']) == 0.0


def test_expert_label_init_matches_per_expert_loop():
  model, buffer, _, _ = _setup(num_experts=4, epochs=2, arch='convnet')
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  rng = np.random.default_rng(13)
  images = rng.normal(size=(11,) + SHAPE).astype(np.float32)
  labels = rng.integers(0, K, 11)
  correct, logits = mtt.expert_label_init(ctx, images, labels, batch_size=4)
  per_expert = []
  for e in range(4):
    params = buffer.unflatten(buffer.trajectories[e, -1])
    per_expert.append(np.stack([np.asarray(model.apply({'params': params}, images[i:i + 1],
                                                       train=False))[0]
                                for i in range(11)]))
  per_expert = np.stack(per_expert)                      # [E, N, K]
  right = per_expert.argmax(-1) == labels[None]
  np.testing.assert_array_equal(np.asarray(correct), right[0])
  assert right.any(0).any() and not right.all()          # both cases occur
  for i in range(11):
    rows = per_expert[right[:, i], i] if right[:, i].any() else per_expert[:, i]
    np.testing.assert_allclose(np.asarray(logits[i]), rows.mean(0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------
# The Objective and its configuration.
# ----------------------------------------------------------------------------------


def test_objective_gradients_reach_images_labels_and_syn_lr():
  model, buffer, images, labels = _setup(num_experts=2)
  config = ml_collections.ConfigDict(dict(objective=dict(
      name='mtt', syn_steps=2, expert_epochs=2, max_start_epoch=2, lr_teacher=0.02,
      dsa=True, dsa_strategy='flip_scale', label_loss='soft_ce', checkpoint='step')))
  obj = mtt.make_mtt(config)
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  extras = obj.init_extras(ctx, config)
  assert float(extras['syn_lr']) == pytest.approx(0.02)

  def loss(p):
    syn = SynData(p['images'], p['labels'], p['extras'])
    return obj.loss(syn, None, jax.random.key(0), ctx, jnp.int32(0), {})

  p = {'images': images, 'labels': labels * 2.0, 'extras': extras}
  (value, aux), g = _jit(jax.value_and_grad(loss, has_aux=True))(p)
  assert np.isfinite(float(value)) and set(aux) == {'mtt', 'start_epoch', 'syn_lr',
                                                     'skip_update'}
  for leaf in (g['images'], g['labels'], g['extras']['syn_lr']):
    assert float(jnp.abs(leaf).sum()) > 0


@pytest.mark.parametrize('field,value', [
    ('syn_steps', 0), ('syn_steps', 2.5), ('expert_epochs', -1), ('max_start_epoch', 0),
    ('min_start_epoch', 5), ('batch_syn', -1), ('lr_teacher', 0.0), ('threshold', -1.0),
    ('label_loss', 'mse'), ('param_mask', 'layer'), ('mask_ratio', 1.0),
    ('checkpoint', 'full'), ('dsa_strategy', 'color_warp'), ('dsa', 'yes'),
    ('expansion_end_step', -3), ('grad_chunks', 0), ('grad_chunks', 1.5)])
def test_bad_config_values_raise(field, value):
  cfg = dict(syn_steps=3, expert_epochs=2, max_start_epoch=5, dsa=True)
  cfg[field] = value
  with pytest.raises(ConfigError, match=f'objective.{field}'):
    mtt.make_mtt(ml_collections.ConfigDict(dict(objective=cfg)))


def test_bad_sequential_generation_and_buffer_raise():
  with pytest.raises(ConfigError, match='objective.max_start_epoch_initial'):
    tm.parse(dict(max_start_epoch=10, expansion_end_step=100,
                  max_start_epoch_initial=0))
  with pytest.raises(ConfigError, match='objective.max_start_epoch'):
    tm.check_buffer((2, 5, 10), tm.parse(dict(max_start_epoch=4, expert_epochs=2)))
  tm.check_buffer((2, 5, 10), tm.parse(dict(max_start_epoch=3, expert_epochs=2,
                                            min_start_epoch=0)))


class _DS:   # the fields build_buffer reads
  name = 'tiny'
  x_train = np.zeros((6,) + SHAPE, np.float32)
  y_train = np.repeat(np.arange(K), 2)
  num_classes = K


@pytest.mark.parametrize('experts,pad,field', [
    (dict(num_experts=1, epochs=1, schedule='easy'), {}, 'objective.experts.schedule'),
    (dict(num_experts=1, epochs=1, schedule='pad'), dict(ir=0.5), 'objective.pad.ir'),
    (dict(num_experts=1, epochs=1, schedule='pad'), dict(initial_ratio=1.5),
     'objective.pad.initial_ratio')])
def test_build_buffer_rejects_bad_schedules_before_training(experts, pad, field):
  config = ml_collections.ConfigDict(dict(
      seed=0, model=dict(name='mlp'), objective=dict(experts=experts, pad=pad)))
  with pytest.raises(ConfigError, match=field):
    mtt.build_buffer(_DS, config)
