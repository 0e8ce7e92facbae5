"""Expert trajectories: seed loops equal sequential runs, epochs equal a slow SGD loop,
storage round-trips, the cache trains once, bad configs raise."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import models
from jaxdd.augment import dsa as dsa_lib
from jaxdd.pretrain import expert_store
from jaxdd.pretrain import experts
from jaxdd.errors import ConfigError, DataError
from jaxdd.train import members
from conftest import prototype_data

SHAPE = (8, 8, 1)
K = 3
STRATEGY = 'crop_flip'  # two groups: exercises the shared group key; compiles fast
CFG = experts.ExpertConfig(num_experts=2, epochs=2, batch_size=5, dsa_strategy=STRATEGY,
                           seed=7, seed_loop='map')


def _data(n_per_class=4, seed=0):
  return prototype_data(K, SHAPE, n_per_class, seed)


def _model(width=8):
  return models.get_model('convnet', K, image_shape=SHAPE, width=width, depth=1)


# Jitted: eager calls would compile every small op separately.
_flat = jax.jit(lambda p: models.flatten_params(p)[0])
_init = jax.jit(lambda m, k: models.init_model(m, k, SHAPE)['params'], static_argnums=0)


@pytest.fixture(scope='module')
def buffer_map():
  x, y = _data()
  return experts.train_experts(_model(), SHAPE, x, y, K, CFG, verbose=False)


def test_seed_loops_equal_sequential_training(buffer_map):
  """2 experts at once (lax.map and vmap) equal each expert trained alone."""
  x, y = _data()
  together_vmap = experts.train_experts(_model(), SHAPE, x, y, K,
                                        CFG._replace(seed_loop='vmap'), verbose=False)
  alone = [experts.train_experts(_model(), SHAPE, x, y, K,
                                 CFG._replace(num_experts=1), first_expert=i,
                                 verbose=False).trajectories[0] for i in range(2)]
  for together in (buffer_map, together_vmap):
    assert together.trajectories.shape == (2, CFG.epochs + 1, alone[0].shape[1])
    for i in range(2):
      np.testing.assert_allclose(together.trajectories[i], alone[i], rtol=1e-4, atol=1e-5)
  # Different seeds are different networks, and training moved them.
  t = buffer_map.trajectories
  assert not np.allclose(t[0, 0], t[1, 0])
  assert not np.allclose(t[0, 0], t[0, 2])


def test_trajectory_starts_at_the_init_of_the_same_seed(buffer_map):
  t = buffer_map.trajectories
  assert t.dtype == np.float32 and t.shape[1] == CFG.epochs + 1
  for i in range(2):
    init_key = jax.random.split(members.member_key(CFG.seed, i), 3)[0]
    params = _init(_model(), init_key)
    flat = _flat(params)
    np.testing.assert_array_equal(t[i, 0], np.asarray(flat))
    # unflatten of a row gives the params tree back.
    tree = buffer_map.unflatten(jnp.asarray(t[i, 0]))
    assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_epochs_equal_a_slow_sgd_loop_with_a_schedule(monkeypatch):
  """Two epochs (7 then 9 allowed images, batch 4: last batches of 3 and 1) equal a
  Python loop of PyTorch-style SGD steps (momentum, coupled weight decay) on the
  same batches, and the epoch function is traced once despite the size change."""
  x, y = _data(n_per_class=3)
  n = x.shape[0]
  allowed = {0: np.array([0, 1, 3, 4, 5, 7, 8]), 1: np.arange(n)}
  cfg = experts.ExpertConfig(num_experts=1, epochs=2, lr=0.05, momentum=0.5,
                             weight_decay=1e-2, batch_size=4, dsa_strategy=STRATEGY,
                             seed=3, seed_loop='map')
  traces = []
  real_make = experts.make_epoch_fn

  def counting_make(*args, **kwargs):
    fn = real_make(*args, **kwargs)

    def counted(*a, **k):
      traces.append(1)  # runs once per trace, never per call of compiled code
      return fn(*a, **k)
    return counted

  monkeypatch.setattr(experts, 'make_epoch_fn', counting_make)
  model = _model()
  buf = experts.train_experts(model, SHAPE, x, y, K, cfg, schedule=allowed.__getitem__,
                              verbose=False)
  assert len(traces) == 1
  assert buf.meta['epoch_sizes'] == [7, 9]

  # The slow reference: same keys (the module's documented derivation), real
  # smaller last batches, plain grad and hand-written SGD.
  key = members.member_key(cfg.seed, 0)
  init_key, data_key, aug_key = jax.random.split(key, 3)
  choice = jax.random.fold_in(jax.random.key(cfg.seed), 1 << 30)
  params = _init(model, init_key)
  mom = jax.tree_util.tree_map(jnp.zeros_like, params)

  @jax.jit
  def sgd(params, mom, xb, yb):
    def loss(p):
      logits = model.apply({'params': p}, xb, train=True)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(yb.shape[0]), yb])
    g = jax.grad(loss)(params)
    g = jax.tree_util.tree_map(lambda g, p: g + cfg.weight_decay * p, g, params)
    mom = jax.tree_util.tree_map(lambda m, g: cfg.momentum * m + g, mom, g)
    return jax.tree_util.tree_map(lambda p, m: p - cfg.lr * m, params, mom), mom

  for e in range(2):
    idx = allowed[e]
    pos = np.asarray(jax.random.permutation(jax.random.fold_in(data_key, e), n))
    order = idx[[p for p in pos if p < idx.size]]
    for j in range(-(-idx.size // 4)):
      rows = order[np.minimum(np.arange(j * 4, j * 4 + 4), idx.size - 1)]
      xb = dsa_lib.dsa(jax.random.fold_in(jax.random.fold_in(aug_key, e), j),
                       jnp.asarray(x[rows]), strategy=STRATEGY, siamese=False,
                       choice_key=jax.random.fold_in(jax.random.fold_in(choice, e), j))
      valid = min(4, idx.size - j * 4)
      params, mom = sgd(params, mom, xb[:valid], jnp.asarray(y[rows][:valid]))
    flat = _flat(params)
    np.testing.assert_allclose(buf.trajectories[0, e + 1], np.asarray(flat),
                               rtol=1e-4, atol=1e-5)


def test_buffer_round_trips_through_npz(buffer_map, tmp_path):
  path = str(tmp_path / 'sub' / 'buf.npz')
  expert_store.save_buffer(path, buffer_map)
  assert os.listdir(tmp_path / 'sub') == ['buf.npz']  # no temporary file left
  loaded = expert_store.load_buffer(path, _model(), SHAPE)
  np.testing.assert_array_equal(loaded.trajectories, buffer_map.trajectories)
  assert loaded.spec == buffer_map.spec
  assert loaded.meta == buffer_map.meta
  row = jnp.asarray(loaded.trajectories[1, 2])
  for a, b in zip(jax.tree_util.tree_leaves(loaded.unflatten(row)),
                  jax.tree_util.tree_leaves(buffer_map.unflatten(row))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(DataError, match='does not fit'):
    expert_store.load_buffer(path, _model(width=16), SHAPE)


def test_interrupted_save_leaves_no_file(buffer_map, tmp_path, monkeypatch):
  def broken_savez(f, **arrays):
    f.write(b'partial')
    raise KeyboardInterrupt

  monkeypatch.setattr(np, 'savez', broken_savez)
  with pytest.raises(KeyboardInterrupt):
    expert_store.save_buffer(str(tmp_path / 'buf.npz'), buffer_map)
  assert os.listdir(tmp_path) == []


def test_load_or_train_trains_once_then_loads(buffer_map, tmp_path, monkeypatch,
                                              capsys):
  x, y = _data()
  calls = []

  def fake_train(*args, **kwargs):
    calls.append(args[5])
    return buffer_map

  monkeypatch.setattr(experts, 'train_experts', fake_train)
  run = lambda cfg, name='none': expert_store.load_or_train(
      str(tmp_path), _model(), SHAPE, 'tiny', x, y, K, cfg,
      model_config={'name': 'convnet', 'width': 8, 'depth': 1}, schedule_name=name)
  first = run(CFG)
  assert len(calls) == 1 and 'training' in capsys.readouterr().out
  second = run(CFG)
  assert len(calls) == 1 and 'loading' in capsys.readouterr().out
  np.testing.assert_array_equal(first.trajectories, second.trajectories)
  run(CFG._replace(seed_loop='vmap'))  # only float rounding differs: same buffer
  assert len(calls) == 1
  run(CFG._replace(lr=0.02))
  run(CFG, name='pad')
  assert len(calls) == 3
  assert len(os.listdir(tmp_path)) == 3 and all(
      f.startswith('experts_tiny_') and f.endswith('.npz') for f in os.listdir(tmp_path))


@pytest.mark.parametrize('field,value', [
    ('num_experts', 0), ('epochs', 1.5), ('lr', 0.0), ('momentum', 1.0),
    ('weight_decay', -1e-4), ('batch_size', 0), ('dsa', 'yes'),
    ('dsa_strategy', 'crop_zoom'), ('seed', 'a'), ('seed_loop', 'pmap')])
def test_bad_config_values_raise(field, value):
  cfg = CFG._replace(**{field: value})
  with pytest.raises(ConfigError, match=f'objective.experts.{field}'):
    experts.check_expert_config(cfg)
  x, y = _data()
  with pytest.raises(ConfigError, match=f'objective.experts.{field}'):
    experts.train_experts(_model(), SHAPE, x, y, K, cfg)


def test_batch_norm_models_and_bad_schedules_are_rejected():
  x, y = _data()
  bn = models.get_model('convnet_bn', K, image_shape=SHAPE, width=8, depth=1)
  with pytest.raises(ConfigError, match='batch norm'):
    experts.train_experts(bn, SHAPE, x, y, K, CFG)
  with pytest.raises(DataError, match='schedule'):
    experts.train_experts(_model(), SHAPE, x, y, K, CFG,
                          schedule=lambda e: np.array([0, 99]), verbose=False)
