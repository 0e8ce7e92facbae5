"""DM against a plain numpy computation; Siamese augmentation shared per class."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdd import models
from jaxdd.interfaces import RealBatch, SynData
from jaxdd.objectives.dm import make_dm


class _DS:   # the two fields DM's prepare reads
  def __init__(self, shape, k):
    self.x_train = np.zeros((1,) + shape, np.float32)
    self.num_classes = k


def _config(dsa):
  return ml_collections.ConfigDict(dict(
      model=dict(name='mlp'), objective=dict(name='dm', dsa=dsa)))


def _numpy_mlp_embedding(params, x):
  h = x.reshape(x.shape[0], -1)
  # The MLP's two hidden layers, in depth order (the classifier is not used).
  hidden = [params['fc_0'], params['fc_1']]
  for layer in hidden:
    h = np.maximum(h @ np.asarray(layer['kernel']) + np.asarray(layer['bias']), 0)
  return h


def test_dm_loss_matches_numpy():
  k, n, ipc, shape = 3, 4, 2, (4, 4, 1)
  rng = np.random.default_rng(0)
  real = rng.normal(size=(k, n) + shape).astype(np.float32)
  syn = rng.normal(size=(k * ipc,) + shape).astype(np.float32)
  cfg = _config(dsa=False)
  obj = make_dm(cfg)
  ctx = obj.prepare(_DS(shape, k), cfg)
  key = jax.random.key(3)
  labels = jax.nn.one_hot(jnp.repeat(jnp.arange(k), ipc), k)
  value, aux = obj.loss(SynData(jnp.asarray(syn), labels, {}),
                        RealBatch(jnp.asarray(real), jnp.zeros((k, n), jnp.int32)),
                        key, ctx, 0, {})
  # The same fresh network the objective draws: the first half of split(key).
  net_key, _ = jax.random.split(key)
  params = models.init_model(ctx['model'], net_key, shape)['params']
  expected = 0.0
  for c in range(k):
    er = _numpy_mlp_embedding(params, real[c]).mean(0)
    es = _numpy_mlp_embedding(params, syn[c * ipc:(c + 1) * ipc]).mean(0)
    expected += np.sum((er - es) ** 2)
  np.testing.assert_allclose(float(value), expected, rtol=1e-4)
  assert float(aux['dm']) == float(value)


def test_dm_gradient_reaches_only_the_synthetic_images_and_matches_fd():
  k, n, ipc, shape = 2, 3, 1, (4, 4, 1)
  rng = np.random.default_rng(1)
  real = jnp.asarray(rng.normal(size=(k, n) + shape).astype(np.float32))
  syn = jnp.asarray(rng.normal(size=(k * ipc,) + shape).astype(np.float32))
  cfg = _config(dsa=False)
  obj = make_dm(cfg)
  ctx = obj.prepare(_DS(shape, k), cfg)
  labels = jax.nn.one_hot(jnp.arange(k), k)
  batch = RealBatch(real, jnp.zeros((k, n), jnp.int32))
  f = lambda s, r: obj.loss(SynData(s, labels, {}), RealBatch(r, batch.labels),
                            jax.random.key(0), ctx, 0, {})[0]
  g_syn, g_real = jax.grad(f, argnums=(0, 1))(syn, real)
  assert float(jnp.abs(g_real).max()) == 0.0          # real embeddings are constants
  # Central differences in float64 (the network's float32 weights are promoted).
  with jax.enable_x64(True):
    direction = jnp.asarray(rng.normal(size=syn.shape))
    s64, r64 = jnp.asarray(syn, jnp.float64), jnp.asarray(real, jnp.float64)
    eps = 1e-5
    fd = (f(s64 + eps * direction, r64) - f(s64 - eps * direction, r64)) / (2 * eps)
    analytic = jnp.vdot(jax.grad(f)(s64, r64), direction)
    np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-5)
    np.testing.assert_allclose(float(jnp.vdot(g_syn, direction)), float(fd), rtol=1e-3)


def test_dm_with_dsa_shares_the_transform_between_real_and_synthetic():
  """If the synthetic images equal the real ones, the Siamese loss is exactly 0."""
  k, n, shape = 2, 3, (8, 8, 3)
  rng = np.random.default_rng(2)
  real = jnp.asarray(rng.normal(size=(k, n) + shape).astype(np.float32))
  cfg = _config(dsa=True)
  obj = make_dm(cfg)
  ctx = obj.prepare(_DS(shape, k), cfg)
  labels = jax.nn.one_hot(jnp.repeat(jnp.arange(k), n), k)
  for seed in range(4):
    value, _ = obj.loss(SynData(real.reshape((k * n,) + shape), labels, {}),
                        RealBatch(real, jnp.zeros((k, n), jnp.int32)),
                        jax.random.key(seed), ctx, 0, {})
    assert float(value) < 1e-8
  # ... while a different synthetic set has a positive loss.
  value, _ = obj.loss(SynData(real.reshape((k * n,) + shape)[::-1], labels, {}),
                      RealBatch(real, jnp.zeros((k, n), jnp.int32)),
                      jax.random.key(0), ctx, 0, {})
  assert float(value) > 1e-6
