"""Squeeze-stage teachers: seed loops equal lone runs, batch-norm running statistics
equal a numpy recomputation, orbax storage round-trips, the cache trains once, bad
configs raise, and a teacher learns digits."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import models
from jaxdd.pretrain import teacher_eval, teacher_store
from jaxdd.pretrain import teachers as tl
from jaxdd.errors import ConfigError, DataError
from jaxdd.train import members
from conftest import prototype_data

SHAPE = (8, 8, 1)
K = 3
CFG = tl.TeacherConfig(
    model='convnet', model_kw={'norm': 'batchnorm', 'width': 8, 'depth': 2}, epochs=2,
    batch_size=5, lr=0.05, crop_pad=1, flip=True, num_teachers=2, seed=3,
    seed_loop='map', test_batch_size=7)


def _data(n_per_class=4, seed=0):
  return prototype_data(K, SHAPE, n_per_class, seed)


def _leaves(tree):
  return jax.tree_util.tree_leaves(tree)


@pytest.fixture(scope='module')
def pair():
  x, y = _data()
  return tl.train_teachers(x, y, K, CFG, verbose=False)


@pytest.fixture(scope='module')
def alone():
  x, y = _data()
  one = CFG._replace(num_teachers=1)
  return [tl.train_teachers(x, y, K, one, first_teacher=i, verbose=False) for i in (0, 1)]


@pytest.mark.parametrize('how', ['map', 'vmap'])
def test_together_equals_alone(how, pair, alone):
  if how == 'map':
    together = pair
  else:
    x, y = _data()
    together = tl.train_teachers(x, y, K, CFG._replace(seed_loop=how), verbose=False)
  assert teacher_eval.num_teachers(together) == 2
  for i in (0, 1):
    got, want = teacher_eval.teacher(together, i), teacher_eval.teacher(alone[i], 0)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    assert set(got) == {'params', 'batch_stats'}
    for a, b in zip(_leaves(got), _leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # Distinct keys: the two teachers are different networks.
  diff = [np.max(np.abs(a - b)) for a, b in zip(
      _leaves(teacher_eval.teacher(together, 0)), _leaves(teacher_eval.teacher(together, 1)))]
  assert max(diff) > 1e-3


def test_running_stats_moved_from_init(pair):
  stats = pair.variables['batch_stats']
  for block in ('block_0', 'block_1'):
    mean = stats[block]['norm']['mean']
    var = stats[block]['norm']['var']
    assert mean.shape == var.shape == (2, 8)
    assert np.all(np.abs(mean) > 1e-6)  # init 0
    assert np.all(np.abs(var - 1) > 1e-6)  # init 1


def _conv3x3_numpy(x, kernel, bias):
  """Cross-correlation with zero padding 1, explicit loops over the 3x3 taps."""
  n, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, w, kernel.shape[-1]))
  for i in range(3):
    for j in range(3):
      out += np.einsum('nhwc,co->nhwo', xp[:, i:i + h, j:j + w], kernel[i, j])
  return out + bias


def test_running_stats_one_step_equal_numpy():
  x, y = _data()
  n = x.shape[0]
  # One step on the whole set, no augmentation: the running statistics see the
  # first conv's output on all images under the initial parameters.
  cfg = CFG._replace(model_kw={'norm': 'batchnorm', 'width': 8, 'depth': 1}, epochs=1,
                     batch_size=n, crop_pad=0, flip=False, num_teachers=1)
  trained = tl.train_teachers(x, y, K, cfg, verbose=False)
  init_key = jax.random.split(members.member_key(cfg.seed, 0), 3)[0]
  init = models.init_model(trained.model, init_key, SHAPE)
  conv = init['params']['block_0']['conv']
  z = _conv3x3_numpy(x.astype(np.float64), np.asarray(conv['kernel'], np.float64),
                     np.asarray(conv['bias'], np.float64))
  batch_mean = z.mean(axis=(0, 1, 2))
  batch_var = z.reshape(-1, z.shape[-1]).var(axis=0, ddof=1)  # PyTorch: unbiased
  momentum = models.layers.BN_MOMENTUM
  got = teacher_eval.teacher(trained, 0)['batch_stats']['block_0']['norm']
  np.testing.assert_allclose(got['mean'], momentum * batch_mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got['var'], (1 - momentum) * 1.0 + momentum * batch_var,
                             rtol=1e-4, atol=1e-6)
  # The parameters were updated too (one SGD step).
  assert not np.allclose(teacher_eval.teacher(trained, 0)['params']['block_0']['conv']['kernel'],
                         conv['kernel'])


def test_cosine_schedule_per_epoch():
  cfg = CFG._replace(epochs=3, momentum=0.0, weight_decay=0.0)
  tx = tl._optimizer(cfg, steps_per_epoch=4)
  params = {'w': jnp.zeros(())}
  state = tx.init(params)
  for step in range(12):
    updates, state = tx.update({'w': jnp.ones(())}, state, params)
    epoch = step // 4
    want = -cfg.lr * 0.5 * (1 + np.cos(np.pi * epoch / 3))
    np.testing.assert_allclose(updates['w'], want, rtol=1e-6, atol=1e-9)


def test_sgd_weight_decay_is_coupled():
  cfg = CFG._replace(lr_schedule='constant', momentum=0.0, weight_decay=0.1)
  tx = tl._optimizer(cfg, steps_per_epoch=1)
  params = {'w': jnp.array([2.0, -1.0])}
  updates, _ = tx.update({'w': jnp.array([0.5, 0.5])}, tx.init(params), params)
  np.testing.assert_allclose(updates['w'], -cfg.lr * (np.array([0.5, 0.5]) +
                                                      0.1 * np.array([2.0, -1.0])),
                             rtol=1e-6)


def test_adamw_first_step_closed_form():
  # Adam's first step is lr * g / (|g| + eps) = lr * sign(g); AdamW adds lr * wd * p.
  cfg = CFG._replace(optimizer='adamw', lr_schedule='constant', weight_decay=0.1)
  tx = tl._optimizer(cfg, steps_per_epoch=1)
  p, g = np.array([2.0, -1.0]), np.array([0.5, -3.0])
  updates, _ = tx.update({'w': jnp.asarray(g)}, tx.init({'w': jnp.asarray(p)}),
                         {'w': jnp.asarray(p)})
  np.testing.assert_allclose(updates['w'], -cfg.lr * (np.sign(g) + 0.1 * p), rtol=1e-5)


def test_non_finite_loss_raises():
  x, y = _data()
  x[0] = np.nan  # every pixel: a random crop cannot shift it out of view
  with pytest.raises(FloatingPointError, match='epoch 1'):
    tl.train_teachers(x, y, K, CFG._replace(num_teachers=1), verbose=False)


def test_augment_batch_is_a_padded_crop_and_flip():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
  pad = 2
  seen = set()
  for s in range(4):
    out = np.asarray(tl.augment_batch(jax.random.key(s), jnp.asarray(x), pad, True))
    for n in range(x.shape[0]):
      xp = np.pad(x[n], ((pad, pad), (pad, pad), (0, 0)))
      found = [(dh, dw, f) for dh in range(-pad, pad + 1) for dw in range(-pad, pad + 1)
               for f in (False, True)
               if np.array_equal(out[n], (lambda c: c[:, ::-1] if f else c)(
                   xp[pad + dh:pad + dh + 8, pad + dw:pad + dw + 8]))]
      assert found, f'sample {n} is not a padded crop (+ flip) of its input'
      seen.update(found)
  assert len({(dh, dw) for dh, dw, _ in seen}) > 3 and {f for *_, f in seen} == {
      False, True}
  same = tl.augment_batch(jax.random.key(0), jnp.asarray(x), 0, False)
  np.testing.assert_array_equal(same, x)


def test_teacher_logits_use_running_statistics(pair):
  x, _ = _data()
  full = np.asarray(teacher_eval.teacher_logits(pair, 1, x))
  part = np.asarray(teacher_eval.teacher_logits(pair, 1, x[:3]))
  assert full.shape == (x.shape[0], K)
  # Eval mode: a sample's logits do not depend on the rest of the batch.
  np.testing.assert_allclose(part, full[:3], rtol=1e-5, atol=1e-6)
  assert not np.allclose(teacher_eval.teacher_logits(pair, 0, x[:3]), part)


def test_orbax_round_trip(pair, tmp_path):
  path = str(tmp_path / 'set')
  teacher_store.save_teachers(path, pair)
  assert sorted(os.listdir(tmp_path)) == ['set']  # the temporary directory is gone
  loaded = teacher_store.load_teachers(path)
  assert (jax.tree_util.tree_structure(loaded.variables)
          == jax.tree_util.tree_structure(pair.variables))
  for a, b in zip(_leaves(loaded.variables), _leaves(pair.variables)):
    assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
  assert loaded.model == pair.model
  assert loaded.meta == json.loads(json.dumps(pair.meta))
  with pytest.raises(FileExistsError):
    teacher_store.save_teachers(path, pair)


def test_cache_trains_once_and_retrains_on_change(tmp_path, monkeypatch):
  x, y = _data()
  xt, yt = _data(2, seed=5)
  # The `alone` fixture's compiled programs serve every call below: the seed and the
  # data are traced, not static.
  cfg = CFG._replace(num_teachers=1)
  calls = []
  real = tl.train_teachers

  def counting(*args, **kwargs):
    calls.append(args[3])
    return real(*args, **kwargs)

  monkeypatch.setattr(tl, 'train_teachers', counting)
  cache = str(tmp_path)
  first = teacher_store.load_or_train_teachers(cache, x, y, xt, yt, K, cfg, verbose=False)
  assert len(calls) == 1 and len(first.meta['test_accuracy']) == 1

  def fail(*args, **kwargs):
    raise AssertionError('retrained although a stored set matches')

  monkeypatch.setattr(tl, 'train_teachers', fail)
  # seed_loop only changes rounding: not part of the key.
  second = teacher_store.load_or_train_teachers(cache, x, y, xt, yt, K,
                                     cfg._replace(seed_loop='vmap'), verbose=False)
  for a, b in zip(_leaves(first.variables), _leaves(second.variables)):
    np.testing.assert_array_equal(a, b)
  assert second.meta['test_accuracy'] == first.meta['test_accuracy']

  monkeypatch.setattr(tl, 'train_teachers', counting)
  other = teacher_store.load_or_train_teachers(cache, x, y, xt, yt, K, cfg._replace(seed=4),
                                    verbose=False)
  teacher_store.load_or_train_teachers(cache, x, y[::-1].copy(), xt, yt, K, cfg, verbose=False)
  assert len(calls) == 3 and calls[1].seed == 4
  assert not np.allclose(other.variables['params']['classifier']['kernel'],
                         first.variables['params']['classifier']['kernel'])
  assert len(os.listdir(cache)) == 3 and all(
      name.startswith('teachers_convnet_') and '.tmp' not in name
      for name in os.listdir(cache))


@pytest.mark.parametrize('field,value,accepted', [
    ('optimizer', 'adam', 'sgd'),
    ('epochs', 0, '>= 1'),
    ('lr', -0.1, '> 0'),
    ('lr_schedule', 'step', 'cosine'),
    ('model', 'convnet9', 'resnet18'),
    ('model_kw', {'widht': 8}, 'width'),
    ('flip', 'yes', 'True'),
    ('crop_pad', -1, '>= 0'),
    ('seed_loop', 'pmap', 'vmap'),
    ('num_teachers', 1.5, 'integer'),
])
def test_bad_config_raises(field, value, accepted):
  cfg = CFG._replace(**{field: value})
  with pytest.raises(ConfigError, match=f'objective.teachers.{field} must be') as e:
    tl.check_teacher_config(cfg)
  assert accepted in str(e.value)
  x, y = _data()
  with pytest.raises(ConfigError, match=field):
    tl.train_teachers(x, y, K, cfg, verbose=False)


def test_bad_model_option_or_crop_raises():
  with pytest.raises(ConfigError, match='model_kw.*norm.*batchnorm'):
    tl.make_teacher_model(CFG._replace(model_kw={'norm': 'bn'}), K, SHAPE)
  with pytest.raises(ConfigError, match='crop_pad'):
    tl.make_teacher_model(CFG._replace(crop_pad=8), K, SHAPE)
  with pytest.raises(ConfigError, match='at least one'):
    teacher_store.load_or_train_teacher_sets('/nonexistent', None, None, None, None, K, [])


def test_teacher_learns_digits(tmp_path):
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int32)
  rng = np.random.default_rng(0)
  idx = rng.permutation(len(y))
  tr, te = idx[:300], idx[300:600]
  mean, std = x[tr].mean(), x[tr].std()
  x = (x - mean) / std
  cfg = tl.TeacherConfig(
      model='convnet', model_kw={'norm': 'batchnorm', 'width': 16, 'depth': 2},
      epochs=10, batch_size=50, lr=0.1, crop_pad=1, flip=False, num_teachers=1)
  sets = teacher_store.load_or_train_teacher_sets(str(tmp_path), x[tr], y[tr], x[te], y[te], 10,
                                       [cfg], verbose=False)
  assert len(sets) == 1
  acc = sets[0].meta['test_accuracy'][0]
  # An independent count from the logits.
  pred = np.argmax(np.asarray(teacher_eval.teacher_logits(sets[0], 0, x[te])), -1)
  np.testing.assert_allclose(acc, np.mean(pred == y[te]), atol=1e-6)
  print('digits teacher test accuracy', acc)
  assert acc > 0.7, acc  # chance is 0.1


def test_load_rejects_missing_or_mismatched_set(pair, tmp_path):
  with pytest.raises(DataError, match='not readable'):
    teacher_store.load_teachers(str(tmp_path / 'missing'))
  path = str(tmp_path / 'set')
  teacher_store.save_teachers(path, pair)
  meta_file = os.path.join(path, 'meta.json')
  with open(meta_file) as f:
    meta = json.load(f)
  meta['config']['model_kw']['width'] = 16  # the stored arrays are width 8
  with open(meta_file, 'w') as f:
    json.dump(meta, f)
  with pytest.raises(DataError, match='does not fit'):
    teacher_store.load_teachers(path)
