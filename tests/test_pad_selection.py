"""PAD's two modules outside trajectory matching (its appendix, Tables 6-7): the
difficulty-filtered real pool (FIEX) for any objective that reads real batches, and the
shallow-parameter masks (FIEM) of DC's distance and DM's layer-wise embedding; checked
against numpy and slow per-row loops."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdd import distill, models
from jaxdd.pretrain import difficulty
from jaxdd.pretrain import real_filter
from jaxdd.errors import ConfigError
from jaxdd.interfaces import RealBatch, SynData
from jaxdd.objectives import param_mask
from jaxdd.objectives.dc import gradient_distance, make_dc
from jaxdd.objectives.dm import make_dm
from conftest import load_config


# ----------------------------------------------------------------------------------
# FIEX: the filtered pool.
# ----------------------------------------------------------------------------------


def test_kept_indices_remove_the_hardest_or_easiest_fraction_of_each_class():
  # Class 0: indices 0..9 with scores rising with the index; class 1: 10..17 falling.
  scores = np.concatenate([np.arange(10.0), 100 - np.arange(8.0)])
  y = np.array([0] * 10 + [1] * 8)
  orderings = difficulty.class_orderings(scores, y, 2)
  hard = real_filter.kept_indices(orderings, 'hard', 0.25)
  # ⌊0.25·10⌋ = 2 hardest of class 0 (8, 9), ⌊0.25·8⌋ = 2 of class 1 (10, 11).
  np.testing.assert_array_equal(hard, [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17])
  easy = real_filter.kept_indices(orderings, 'easy', 0.25)
  np.testing.assert_array_equal(easy, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
  np.testing.assert_array_equal(real_filter.kept_indices(orderings, 'none', 0.5),
                                np.arange(18))
  # A one-image class keeps its image at any ratio < 1; class 1 keeps its easiest (17).
  np.testing.assert_array_equal(
      real_filter.kept_indices([np.array([3])] + orderings[1:], 'hard', 0.99), [3, 17])


@pytest.mark.parametrize('field, value, match', [
    ('drop', 'middle', 'real_filter.drop must be one of none, hard, easy'),
    ('ratio', 1.0, r'real_filter.ratio must be a number in \[0, 1\)'),
    ('el2n_nets', 0, 'real_filter.el2n_nets must be a positive integer'),
    ('colour', 1, 'real_filter.colour is unknown'),
])
def test_real_filter_config_errors_name_the_field(field, value, match):
  cfg = load_config('quickstart', 'runlocal')
  cfg.real_filter[field] = value
  with pytest.raises(ConfigError, match=match):
    distill.check_config(cfg)


def test_setup_samples_real_batches_and_init_only_from_the_filtered_pool(
    tmp_path, monkeypatch):
  calls = []

  def fake_scores(model, image_shape, x, y, num_classes, key, *, num_nets, epochs):
    calls.append((num_nets, epochs))
    return np.asarray(x).reshape(len(x), -1).mean(-1)   # brightness as "difficulty"

  monkeypatch.setattr(difficulty, 'el2n_scores', fake_scores)
  cfg = load_config('quickstart', 'runlocal')
  cfg.real_filter.update(drop='hard', ratio=0.5, cache_dir=str(tmp_path))
  run = distill.setup(cfg)
  ds = run.ds
  scores = ds.x_train.reshape(len(ds.x_train), -1).mean(-1)
  keep = real_filter.kept_indices(
      difficulty.class_orderings(scores, ds.y_train, ds.num_classes), 'hard', 0.5)
  np.testing.assert_array_equal(np.asarray(run.x_train), ds.x_train[keep])
  assert calls == [(3, 2)]
  # The real init (pixels, real) is drawn from the pool: every image is a kept one.
  init = np.asarray(run.state['params']['syn']['images']).reshape(-1, *ds.x_train.shape[1:])
  pool = ds.x_train[keep].reshape(len(keep), -1)
  removed = np.delete(ds.x_train, keep, axis=0).reshape(-1, pool.shape[1])
  for img in init.reshape(len(init), -1):
    assert np.abs(pool - img).max(-1).min() == 0
    assert np.abs(removed - img).max(-1).min() > 0
  # A second setup reads the cached scores instead of scoring again.
  run2 = distill.setup(cfg)
  assert calls == [(3, 2)]
  np.testing.assert_array_equal(np.asarray(run2.x_train), ds.x_train[keep])


# ----------------------------------------------------------------------------------
# FIEM: the masks.
# ----------------------------------------------------------------------------------


def test_depth_mask_zeroes_exactly_the_first_fraction_in_depth_order():
  model = models.get_model('convnet', 3, image_shape=(8, 8, 1), width=4, depth=2)
  params = models.init_model(model, jax.random.key(0), (8, 8, 1))['params']
  vec, _ = models.flatten_params(params)
  total = vec.shape[0]
  for ratio in (0.0, 0.3, 0.5, 0.99):
    mask = models.depth_mask(params, ratio)
    flat, _ = models.flatten_params(mask)
    expected = (np.arange(total) >= int(ratio * total)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(flat), expected)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(params)
  # Abstract parameters give the same mask.
  abstract = jax.eval_shape(lambda: params)
  flat_a, _ = models.flatten_params(models.depth_mask(abstract, 0.3))
  np.testing.assert_array_equal(np.asarray(flat_a),
                                np.asarray(models.flatten_params(
                                    models.depth_mask(params, 0.3))[0]))


def _slow_masked_distance(g_real, g_syn, masks):
  """Per tensor, per output row: the cosine over the row's kept entries (a loop)."""
  total = 0.0
  for (path, gr), gs, m in zip(jax.tree_util.tree_leaves_with_path(g_real),
                               jax.tree_util.tree_leaves(g_syn),
                               jax.tree_util.tree_leaves(masks)):
    gr, gs, m = (np.asarray(a, np.float64) for a in (gr, gs, m))
    if gr.ndim <= 1:
      continue
    for o in range(gr.shape[-1]):   # Flax keeps the output axis last
      keep = m[..., o].ravel() > 0
      if not keep.any():
        continue
      a, b = gr[..., o].ravel()[keep], gs[..., o].ravel()[keep]
      total += 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6)
  return total


@pytest.mark.parametrize('ratio', [0.0, 0.2, 0.6])
def test_dc_distance_with_the_depth_mask_matches_a_slow_loop(ratio):
  model = models.get_model('convnet', 3, image_shape=(8, 8, 1), width=4, depth=2)
  params = models.init_model(model, jax.random.key(0), (8, 8, 1))['params']
  rng = np.random.default_rng(0)
  g_real = jax.tree_util.tree_map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  g_syn = jax.tree_util.tree_map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  masks = models.depth_mask(params, ratio)
  value = float(gradient_distance(g_real, g_syn, masks))
  np.testing.assert_allclose(value, _slow_masked_distance(g_real, g_syn, masks), rtol=1e-5)
  if ratio == 0.0:   # nothing masked: DC's plain distance
    np.testing.assert_allclose(value, float(gradient_distance(g_real, g_syn)), rtol=1e-6)
  # Masked entries do not reach the distance: changing them changes nothing.
  other = jax.tree_util.tree_map(lambda g, m: g * m + 7.0 * (1 - m), g_syn, masks)
  np.testing.assert_allclose(float(gradient_distance(g_real, other, masks)), value,
                             rtol=1e-6)


def test_dc_loss_with_the_depth_mask_matches_per_class_gradients_and_a_slow_loop():
  k, n, ipc, shape, ratio = 3, 4, 2, (8, 8, 1), 0.4
  cfg = ml_collections.ConfigDict(dict(
      ipc=ipc, model=dict(name='convnet', width=4, depth=2),
      objective=dict(name='dc', dsa=False, outer_loop=2, inner_loop=1,
                     param_mask='depth', mask_ratio=ratio)))
  obj = make_dc(cfg)
  ctx = obj.prepare(_DS(shape, k), cfg)
  state = obj.init_state(jax.random.key(0), ctx)
  rng = np.random.default_rng(0)
  real = RealBatch(jnp.asarray(rng.normal(size=(k, n) + shape), jnp.float32),
                   jnp.repeat(jnp.arange(k)[:, None], n, axis=1))
  syn = SynData(jnp.asarray(rng.normal(size=(k * ipc,) + shape), jnp.float32),
                jax.nn.one_hot(jnp.repeat(jnp.arange(k), ipc), k), {})
  value, _ = jax.jit(lambda s: obj.loss(s, real, jax.random.key(1), ctx, 0, state))(syn)
  model, params = ctx['model'], state['variables']['params']

  def ce(p, x, c):
    logits = model.apply({'params': p}, x, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.full((x.shape[0],), c)).mean()

  masks = models.depth_mask(params, ratio)
  expected = sum(
      _slow_masked_distance(jax.grad(ce)(params, real.images[c], c),
                            jax.grad(ce)(params, syn.images[c * ipc:(c + 1) * ipc], c), masks)
      for c in range(k))
  np.testing.assert_allclose(float(value), expected, rtol=1e-4)


def test_selection_config_errors():
  with pytest.raises(ConfigError, match='objective.param_mask must be one of none, depth'):
    param_mask.mask_ratio(ml_collections.ConfigDict(dict(name='dm', param_mask='smallest')))
  with pytest.raises(ConfigError, match=r'objective.mask_ratio must be a number in \[0, 1\)'):
    param_mask.mask_ratio(ml_collections.ConfigDict(dict(param_mask='depth', mask_ratio=1)))
  assert param_mask.mask_ratio(ml_collections.ConfigDict(dict(mask_ratio=0.5))) is None


class _DS:
  def __init__(self, shape, k):
    self.x_train = np.zeros((1,) + shape, np.float32)
    self.num_classes = k


def _numpy_mlp_layers(params, x):
  h, outs = x.reshape(x.shape[0], -1), []
  for name in ('fc_0', 'fc_1'):
    h = np.maximum(h @ np.asarray(params[name]['kernel']) + np.asarray(params[name]['bias']),
                   0)
    outs.append(h)
  return outs


def test_dm_with_the_depth_mask_matches_numpy_layerwise_means():
  k, n, ipc, shape, ratio = 3, 4, 2, (4, 4, 1), 0.3
  rng = np.random.default_rng(0)
  real = rng.normal(size=(k, n) + shape).astype(np.float32)
  syn = rng.normal(size=(k * ipc,) + shape).astype(np.float32)
  cfg = ml_collections.ConfigDict(dict(model=dict(name='mlp'), objective=dict(
      name='dm', dsa=False, param_mask='depth', mask_ratio=ratio)))
  obj = make_dm(cfg)
  ctx = obj.prepare(_DS(shape, k), cfg)
  key = jax.random.key(3)
  syn_data = SynData(jnp.asarray(syn), jax.nn.one_hot(jnp.repeat(jnp.arange(k), ipc), k), {})
  value, _ = obj.loss(syn_data, RealBatch(jnp.asarray(real), jnp.zeros((k, n), jnp.int32)),
                      key, ctx, 0, {})
  params = models.init_model(ctx['model'], jax.random.split(key)[0], shape)['params']
  expected = 0.0
  for c in range(k):
    er = np.concatenate([o.mean(0) for o in _numpy_mlp_layers(params, real[c])])
    es = np.concatenate([o.mean(0) for o in _numpy_mlp_layers(
        params, syn[c * ipc:(c + 1) * ipc])])
    cut = int(ratio * er.size)   # the shallowest entries leave the match
    expected += np.sum((er[cut:] - es[cut:]) ** 2)
  np.testing.assert_allclose(float(value), expected, rtol=1e-4)
