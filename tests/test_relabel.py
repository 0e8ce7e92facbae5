"""The relabel protocol against hand-written loops, numpy losses and closed forms."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import evaluate, models
from jaxdd.sre import relabel
from jaxdd.errors import ConfigError
from jaxdd.train import losses

SHAPE = (8, 8, 1)
K = 3
PLAIN = dict(crop='none', flip=False, mix='none')   # no augmentation


def _student(name='convnet', norm='none'):
  # No normalisation by default: a conv bias before instance/batch norm has a zero
  # gradient, and Adam turns the float noise of that zero into O(lr) steps that differ
  # between any two ways of computing it.
  return models.get_model(name, K, image_shape=SHAPE, width=8, depth=1, norm=norm)


def _labelled_set(n_per_class=3, seed=0):
  """Random images whose pixel (0, 0, 0) holds the class id, so a teacher can read it."""
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(K), n_per_class).astype(np.int32)
  x = rng.normal(size=(y.size,) + SHAPE).astype(np.float32)
  x[:, 0, 0, 0] = y
  return jnp.asarray(x), jnp.asarray(y)


def oracle_teacher(x):
  """A saturated one-hot teacher: 50 · one_hot(label read from the image)."""
  return 50.0 * jax.nn.one_hot(jnp.round(x[:, 0, 0, 0]).astype(jnp.int32), K)


def _tree_close(a, b, rtol=1e-4, atol=1e-6):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(la) == len(lb)
  for u, v in zip(la, lb):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def _hand_loop(key, model, x, y, cfg, loss, optimizer):
  """The relabel run written the slow way: a Python loop over steps with the same keys.

  ``loss(params, xb, yb, step_key)`` is the batch loss; ``optimizer`` is 'adamw' or
  'sgd', written out by hand (PyTorch's AdamW / SGD with coupled weight decay), with
  the per-epoch cosine factor 0.5 (1 + cos(π e / E)). Returns the parameters after
  every step (index 0: the initial ones).
  """
  n = x.shape[0]
  batch = min(cfg.batch_size, n)
  spe = math.ceil(n / batch)
  init_key, data_key, aug_key = jax.random.split(key, 3)
  params = models.init_model(model, init_key, SHAPE)['params']
  tmap = jax.tree_util.tree_map
  m = tmap(jnp.zeros_like, params)
  v = tmap(jnp.zeros_like, params)
  traj = [params]
  for s in range(cfg.epochs * spe):
    epoch, within = divmod(s, spe)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(data_key, epoch), n))
    idx = perm[(within * batch + np.arange(batch)) % n]
    g = jax.grad(loss)(params, x[idx], y[idx], jax.random.fold_in(aug_key, s))
    lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
    wd = cfg.weight_decay
    if optimizer == 'adamw':
      t = s + 1
      m = tmap(lambda m, g: 0.9 * m + 0.1 * g, m, g)
      v = tmap(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
      params = tmap(lambda p, m, v: p - lr * ((m / (1 - 0.9 ** t)) / (
          jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8) + wd * p), params, m, v)
    else:
      m = tmap(lambda b, g, p: cfg.momentum * b + g + wd * p, m, g, params)
      params = tmap(lambda p, b: p - lr * b, params, m)
    traj.append(params)
  return traj


def _ce_loss(model):
  def loss(p, xb, yb, _):
    logits, _ = models.apply_model(model, {'params': p}, xb, train=True)
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(yb.size), yb])
  return loss


def test_one_hot_oracle_teacher_reduces_to_hard_label_training():
  """KL at T = 1 to a saturated one-hot teacher is CE: same weights as a CE loop."""
  x, y = _labelled_set()
  model = _student()
  cfg = relabel.RelabelConfig(epochs=3, batch_size=4, temperature=1.0, **PLAIN)
  key = jax.random.key(0)
  train = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], cfg, oracle_teacher)
  variables, losses = jax.jit(train)(key, x, y)
  traj = _hand_loop(key, model, x, y, cfg, _ce_loss(model), 'adamw')
  assert losses.shape == (3 * 3,)
  _tree_close(variables['params'], traj[-1])
  # The run moved the weights, so the comparison is not vacuous.
  assert not np.allclose(jax.tree_util.tree_leaves(traj[0])[0],
                         jax.tree_util.tree_leaves(traj[-1])[0])


def test_augmented_batch_is_what_teacher_and_student_see():
  """Crop + flip + CutMix, a network teacher, SGD: equals the loop that augments by hand."""
  x, y = _labelled_set(seed=1)
  model = _student()
  t_model = models.get_model('convnet', K, image_shape=SHAPE, width=8, depth=1)
  t_vars = models.init_model(t_model, jax.random.key(7), SHAPE)
  teacher = relabel.make_teacher_fn((t_model, t_vars))
  cfg = relabel.RelabelConfig(epochs=2, batch_size=4, optimizer='sgd', lr=0.05,
                              weight_decay=5e-4, temperature=4.0, crop='rrc', flip=True,
                              mix='cutmix', mix_alpha=1.0)
  key = jax.random.key(3)
  train = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], cfg, teacher)
  variables, _ = jax.jit(train)(key, x, y)

  def loss(p, xb, yb, step_key):
    xa = relabel.augment_batch(step_key, xb, cfg)
    t, _ = models.apply_model(t_model, t_vars, xa, train=False)
    s, _ = models.apply_model(model, {'params': p}, xa, train=True)
    pt, log_ps = jax.nn.softmax(t / 4.0), jax.nn.log_softmax(s / 4.0)
    return jnp.sum(pt * (jnp.log(pt) - log_ps)) / xb.shape[0]

  traj = _hand_loop(key, model, x, y, cfg, loss, 'sgd')
  _tree_close(variables['params'], traj[-1])


def test_weight_ema_equals_slow_loop():
  x, y = _labelled_set(seed=2)
  model = _student()
  d = 0.7
  cfg = relabel.RelabelConfig(epochs=2, batch_size=4, temperature=1.0, ema_decay=d,
                              ema_start_epoch=1, **PLAIN)
  key = jax.random.key(5)
  traj = _hand_loop(key, model, x, y, cfg, _ce_loss(model), 'adamw')
  ema = traj[0]           # EDC starts the EMA from the initial weights
  for p in traj[1:]:
    ema = jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p, ema, p)
  train = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], cfg, oracle_teacher)
  variables, _ = jax.jit(train)(key, x, y)
  _tree_close(variables['params'], ema)
  # Before ema_start_epoch the live weights are the evaluated ones.
  late = cfg._replace(ema_start_epoch=2)
  train = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], late, oracle_teacher)
  variables, _ = jax.jit(train)(key, x, y)
  _tree_close(variables['params'], traj[-1])


def test_kl_and_edc_losses_match_numpy():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(5, 4)) * 3
  t = rng.normal(size=(5, 4)) * 3
  y = np.array([0, 3, 1, 1, 2])
  for temp in (1.0, 4.0, 30.0):
    ps = np.exp(s / temp) / np.exp(s / temp).sum(1, keepdims=True)
    pt = np.exp(t / temp) / np.exp(t / temp).sum(1, keepdims=True)
    want = np.sum(pt * (np.log(pt) - np.log(ps))) / 5     # batchmean, no T²
    got = losses.kl_loss(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32), temp)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-7)
  p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
  want = np.mean((s - t) ** 2) + 0.025 * np.mean(-np.log(p[np.arange(5), y]))
  got = losses.edc_loss(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32),
                         jnp.asarray(y), 0.025)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_schedules_match_closed_forms():
  e_total, spe = 10, 3
  steps = np.arange(e_total * spe + spe)          # one epoch past the end, too
  epoch = steps // spe
  base = relabel.RelabelConfig(epochs=e_total, lr=0.2)
  closed = {
      'cosine': 0.5 * (1 + np.cos(np.pi * epoch / e_total)),
      'quarter_cosine': 0.5 * (1 + np.cos(np.pi * epoch / (2 * e_total))),
      'smoothed': 0.5 * (1 + np.cos(np.pi * epoch / (3 * e_total))),
      'multistep': 0.5 ** ((epoch >= 4).astype(int) + (epoch >= 7)),
  }
  for name, factor in closed.items():
    cfg = base._replace(schedule=name, slowdown=3.0, milestones=(4, 7), gamma=0.5)
    got = np.asarray(jax.vmap(relabel.lr_schedule(cfg, spe))(jnp.asarray(steps)))
    np.testing.assert_allclose(got, 0.2 * factor, rtol=1e-6, atol=1e-8, err_msg=name)
  q = base._replace(schedule='quarter_cosine')
  assert float(relabel.epoch_factor(q, e_total)) == pytest.approx(0.5)   # ends at 0.5x
  np.testing.assert_allclose(   # EDC's smoothing with zeta = 2 is UniDD's quarter cosine
      relabel.epoch_factor(base._replace(schedule='smoothed', slowdown=2.0), epoch),
      relabel.epoch_factor(q, epoch), rtol=1e-6)


def test_best_last_readout_and_final_accuracy():
  x, y = _labelled_set(n_per_class=4, seed=3)
  x_test, y_test = _labelled_set(n_per_class=5, seed=4)
  model = _student()
  # Constant lr (multistep without milestones), so an E-epoch run's state after epoch
  # e equals an (e + 1)-epoch run's final state. The window is the whole run, scored
  # every 2 epochs: after epochs 1 and 3 (no epoch before the window).
  cfg = relabel.RelabelConfig(epochs=4, batch_size=6, schedule='multistep', milestones=(),
                              lr=3e-3, temperature=1.0, readout='best_last_20',
                              best_window_frac=1.0, eval_every=2, **PLAIN)
  np.testing.assert_array_equal(relabel.eval_epochs(cfg), [1, 3])
  accuracy = evaluate.make_accuracy_fn(model, cfg)
  acc = jax.jit(lambda v: accuracy(v, x_test, y_test))
  key = jax.random.key(11)
  with_eval = jax.jit(relabel.make_relabel_train_fn(
      model, SHAPE, x.shape[0], cfg, oracle_teacher,
      eval_fn=lambda v: accuracy(v, x_test, y_test)))
  variables, losses, scores = with_eval(key, x, y)
  assert losses.shape == (4 * 2,) and scores.shape == (2,)
  # 'final' is the accuracy of the returned variables ...
  assert float(scores[-1]) == pytest.approx(float(acc(variables)))
  # ... and the earlier score that of a 2-epoch run: the chunked run trains the same.
  short = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], cfg._replace(epochs=2),
                                        oracle_teacher)
  short_vars, short_losses = jax.jit(short)(key, x, y)
  assert float(scores[0]) == pytest.approx(float(acc(short_vars)))
  np.testing.assert_allclose(losses[:4], short_losses, rtol=1e-5)

  res = relabel.evaluate_relabel(key, model, oracle_teacher, x, y, x_test, y_test,
                                 num_seeds=1, cfg=cfg, seed_loop='map')
  _, _, seed_scores = with_eval(jax.random.fold_in(key, 0), x, y)
  assert res['accuracies'][0] == pytest.approx(float(np.max(seed_scores)))
  assert res['final_accuracies'][0] == pytest.approx(float(seed_scores[-1]))
  assert res['accuracies'][0] >= res['final_accuracies'][0]


def test_two_seeds_at_once_equal_two_sequential_runs():
  x, y = _labelled_set(seed=5)
  x_test, y_test = _labelled_set(n_per_class=4, seed=6)
  model = _student('convnet_bn', norm=None)
  # SGD, not Adam: the conv biases before batch norm have a zero gradient whose float
  # noise differs between the vmapped and the single program, and Adam would amplify it.
  cfg = relabel.RelabelConfig(epochs=2, batch_size=4, optimizer='sgd', lr=0.05,
                              temperature=20.0, crop='rrc', flip=True, mix='cutmix',
                              mix_alpha=1.0, ema_decay=0.9)
  train = relabel.make_relabel_train_fn(model, SHAPE, x.shape[0], cfg, oracle_teacher)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(2), i))(jnp.arange(2))
  batched, _ = jax.jit(jax.vmap(train, in_axes=(0, None, None)))(keys, x, y)
  accuracy = evaluate.make_accuracy_fn(model, cfg)
  singles, train_one = [], jax.jit(train)
  for i in range(2):
    single, _ = train_one(keys[i], x, y)
    singles.append(single)
    _tree_close(single, jax.tree_util.tree_map(lambda v: v[i], batched), rtol=2e-4,
                atol=2e-5)
  first = jax.tree_util.tree_leaves(batched)[0]
  assert not np.allclose(first[0], first[1])      # really two networks
  res = relabel.evaluate_relabel(jax.random.key(2), model, oracle_teacher, x, y, x_test,
                                 y_test, num_seeds=2, cfg=cfg, seed_loop='vmap')
  for i in range(2):   # allow one test image to flip between vmapped and single programs
    want = float(accuracy(singles[i], x_test, y_test))
    assert abs(res['accuracies'][i] - want) <= 1 / len(y_test) + 1e-6


def test_teacher_ensemble_is_mean_of_logits():
  x, _ = _labelled_set()
  pairs = []
  for i, name in enumerate(('convnet', 'convnet_bn')):
    m = models.get_model(name, K, image_shape=SHAPE, width=8, depth=1)
    pairs.append((m, models.init_model(m, jax.random.key(i), SHAPE)))
  want = np.mean([np.asarray(m.apply(v, x, train=False)) for m, v in pairs], axis=0)
  np.testing.assert_allclose(relabel.make_teacher_fn(pairs)(x), want, rtol=1e-5, atol=1e-6)
  # A set of same-architecture teachers (leading teacher axis, as jaxdd.pretrain.teachers
  # stores them) counts each of its networks once: here 2 + 1 networks.
  m = pairs[0][0]
  extra = [models.init_model(m, jax.random.key(5 + i), SHAPE) for i in range(2)]
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *extra)

  class TeacherSet(NamedTuple):
    model: object
    variables: dict
    meta: dict | None = None

  mixed = relabel.make_teacher_fn([TeacherSet(m, stacked), pairs[1]])
  want = np.mean([np.asarray(m.apply(v, x)) for v in extra]
                 + [np.asarray(pairs[1][0].apply(pairs[1][1], x, train=False))], axis=0)
  np.testing.assert_allclose(mixed(x), want, rtol=1e-5, atol=1e-6)
  # A jit argument whose leaves are the variables (how evaluate_relabel passes it).
  assert len(jax.tree_util.tree_leaves(mixed)) == (
      len(jax.tree_util.tree_leaves(stacked)) + len(jax.tree_util.tree_leaves(pairs[1][1])))
  np.testing.assert_allclose(jax.jit(lambda f, x: f(x))(mixed, x), want, rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(ConfigError, match='teachers'):
    relabel.make_teacher_fn([])


# The augmentation operations (crops, flips, CutMix, Mixup) are tested in
# tests/test_batch_augment.py; test_augmented_batch_is_what_teacher_and_student_see
# checks how ``augment_batch`` composes them.


@pytest.mark.parametrize('field,value', [
    ('epochs', 0), ('batch_size', -1), ('optimizer', 'adam'), ('schedule', 'linear'),
    ('loss', 'mse'), ('crop', 'center'), ('mix', 'cutout'), ('readout', 'best'),
    ('temperature', 0.0), ('ema_decay', 1.0), ('ema_start_epoch', -1),
    ('milestones', (5, 3)), ('rrc_scale', (0.5, 1.5)), ('gamma', 0.0),
    ('best_window_frac', 0.0), ('eval_every', 0), ('flip', 'yes'),
])
def test_bad_config_raises_config_error(field, value):
  cfg = relabel.RelabelConfig()._replace(**{field: value})
  with pytest.raises(ConfigError, match=f'relabel.{field}'):
    relabel.check_relabel_config(cfg)
  with pytest.raises(ConfigError, match=f'relabel.{field}'):   # before any tracing
    relabel.make_relabel_train_fn(_student(), SHAPE, 4, cfg, oracle_teacher)


def test_presets_are_valid():
  for cfg in relabel.PRESETS.values():
    relabel.check_relabel_config(cfg)
  np.testing.assert_array_equal(relabel.eval_epochs(relabel.PRESETS['unidd']),
                                np.arange(809, 1000, 10))   # UniDD: epoch % 10 == 9, > 800


def test_package_reexports_every_public_name():
  # Every public name defined in the package's modules (and make_teacher_fn, which
  # lives in jaxdd.pretrain.teacher_eval) is the same object under jaxdd.sre.relabel.
  from jaxdd.pretrain import teacher_eval
  from jaxdd.sre.relabel import config
  from jaxdd.sre.relabel import train
  public = {'make_teacher_fn': teacher_eval.make_teacher_fn}
  for mod in (config, train):
    for name, obj in vars(mod).items():
      defined_here = getattr(obj, '__module__', mod.__name__) == mod.__name__
      if not name.startswith('_') and defined_here and not isinstance(obj, type(mod)):
        public[name] = obj
  assert 'evaluate_relabel' in public and 'PRESETS' in public
  assert sorted(relabel.__all__) == sorted(public)
  for name, obj in public.items():
    assert getattr(relabel, name) is obj, name
