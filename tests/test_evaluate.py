"""The evaluation protocol: vmapped seeds equal sequential runs; losses; the CLI."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import evaluate, models
from jaxdd.train import losses
from jaxdd.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(width=8, depth=2)


def _tiny_set(n_per_class=3, k=3, shape=(8, 8, 1), seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n_per_class * k,) + shape).astype(np.float32)
  y = np.repeat(np.arange(k), n_per_class).astype(np.int32)
  return x, y


def test_vmapped_seeds_equal_sequential_runs():
  x, y = _tiny_set()
  model = models.get_model('convnet', 3, image_shape=(8, 8, 1), **TINY)
  cfg = evaluate.EvalConfig(epochs=6, batch_size=4, dsa=True)
  targets = losses.as_targets(y, 3)
  train = evaluate.make_train_fn(model, (8, 8, 1), x.shape[0], cfg)
  keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in (3, 4)])
  keys = jax.vmap(jax.random.wrap_key_data)(keys)
  choice = jax.random.key(9)
  batched, _ = jax.jit(jax.vmap(train, in_axes=(0, None, None, None)))(
      keys, jnp.asarray(x), targets, choice)
  for i in range(2):
    single, _ = jax.jit(train)(keys[i], jnp.asarray(x), targets, choice)
    for a, b in zip(jax.tree_util.tree_leaves(single),
                    jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda v: v[i], batched))):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
  # The two seeds really are different networks.
  first = jax.tree_util.tree_leaves(batched)[0]
  assert not np.allclose(first[0], first[1])


def test_training_steps_follow_sgd_momentum_weight_decay():
  """Two steps of the scan equal two hand-written PyTorch-style SGD steps."""
  x, y = _tiny_set(n_per_class=2, k=2, shape=(4,))
  x = x.reshape(4, 2, 2, 1)
  model = models.get_model('mlp', 2, image_shape=(2, 2, 1))
  cfg = evaluate.EvalConfig(epochs=2, batch_size=4, dsa=False, lr=0.1)
  targets = losses.as_targets(y, 2)
  train = evaluate.make_train_fn(model, (2, 2, 1), 4, cfg)
  key = jax.random.key(0)
  final, _ = jax.jit(train)(key, jnp.asarray(x), targets, jax.random.key(1))

  init_key, _, _ = jax.random.split(key, 3)
  params = models.init_model(model, init_key, (2, 2, 1))['params']

  def loss(p):  # full batch each step, so the order does not matter
    logits = model.apply({'params': p}, jnp.asarray(x))
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), -1))

  buf = jax.tree_util.tree_map(jnp.zeros_like, params)
  for _ in range(2):   # decay after epochs // 2 = 1 epoch: lr 0.1, then 0.01
    lr = 0.1 if _ == 0 else 0.01
    g = jax.grad(loss)(params)
    g = jax.tree_util.tree_map(lambda g, p: g + 5e-4 * p, g, params)
    buf = jax.tree_util.tree_map(lambda b, g: 0.9 * b + g, buf, g)
    params = jax.tree_util.tree_map(lambda p, b: p - lr * b, params, buf)
  for a, b in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(final['params'])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_adam_evaluation_follows_hand_written_adam():
  """optimizer='adam' (RaT-BPTT/PoDD's evaluation): three steps equal PyTorch's Adam
  (bias-corrected moments, eps outside the root) with coupled L2 decay, no lr decay."""
  x, y = _tiny_set(n_per_class=2, k=2, shape=(4,))
  x = x.reshape(4, 2, 2, 1)
  model = models.get_model('mlp', 2, image_shape=(2, 2, 1))
  cfg = evaluate.EvalConfig(epochs=3, batch_size=4, dsa=False, lr=1e-2, optimizer='adam',
                            weight_decay=1e-3, lr_decay_epoch_frac=1.0)
  targets = losses.as_targets(y, 2)
  train = evaluate.make_train_fn(model, (2, 2, 1), 4, cfg)
  key = jax.random.key(0)
  final, _ = jax.jit(train)(key, jnp.asarray(x), targets, jax.random.key(1))

  init_key, _, _ = jax.random.split(key, 3)
  params = jax.tree_util.tree_map(
      lambda v: np.asarray(v, np.float64),
      models.init_model(model, init_key, (2, 2, 1))['params'])

  def loss(p):
    logits = model.apply({'params': p}, jnp.asarray(x))
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), -1))

  m = jax.tree_util.tree_map(np.zeros_like, params)
  v = jax.tree_util.tree_map(np.zeros_like, params)
  for t in range(1, 4):   # the lr stays 1e-2: lr_decay_epoch_frac=1 never decays
    g = jax.grad(loss)(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params))
    g = jax.tree_util.tree_map(lambda g, p: np.asarray(g, np.float64) + 1e-3 * p, g, params)
    m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
    v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - 1e-2 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8),
        params, m, v)
  for a, b in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(final['params'])):
    np.testing.assert_allclose(np.asarray(b), a, rtol=1e-4, atol=1e-5)


def test_label_losses_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 4)).astype(np.float32)
  soft = rng.normal(size=(5, 4)).astype(np.float32)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  probs = np.exp(soft) / np.exp(soft).sum(-1, keepdims=True)
  np.testing.assert_allclose(losses.label_loss(logits, probs, 'ce'),
                             -(probs * log_p).sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.label_loss(logits, soft, 'soft_ce'),
                             -(probs * log_p).sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.label_loss(logits, soft, 'mse'),
                             0.5 * ((logits - soft) ** 2).sum(-1).mean(), rtol=1e-5)


def test_accuracy_counts_against_numpy_with_padding():
  model = models.get_model('mlp', 3, image_shape=(2, 2, 1))
  variables = models.init_model(model, jax.random.key(0), (2, 2, 1))
  rng = np.random.default_rng(1)
  x = rng.normal(size=(7, 2, 2, 1)).astype(np.float32)
  y = rng.integers(0, 3, size=7).astype(np.int32)
  acc = evaluate.make_accuracy_fn(model, evaluate.EvalConfig(test_batch_size=3))(
      variables, jnp.asarray(x), jnp.asarray(y))
  pred = np.asarray(model.apply(variables, jnp.asarray(x))).argmax(-1)
  assert float(acc) == pytest.approx(np.mean(pred == y))


def test_evaluate_synset_learns_separable_data():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
  x = np.concatenate([c + 0.1 * rng.normal(size=(5, 4, 4, 1)) for c in centres])
  y = np.repeat(np.arange(3), 5)
  xt = np.concatenate([c + 0.1 * rng.normal(size=(20, 4, 4, 1)) for c in centres])
  yt = np.repeat(np.arange(3), 20)
  model = models.get_model('mlp', 3, image_shape=(4, 4, 1))
  res = evaluate.evaluate_synset(jax.random.key(0), model, x.astype(np.float32), y, xt, yt,
                                 num_seeds=2, cfg=evaluate.EvalConfig(epochs=30, dsa=False))
  assert res['accuracy_mean'] > 0.9
  assert len(res['accuracies']) == 2


def test_eval_config_errors_name_the_field():
  with pytest.raises(ConfigError, match='eval.loss'):
    evaluate.check_eval_config(evaluate.EvalConfig(loss='hinge'))
  with pytest.raises(ConfigError, match='eval.epochs'):
    evaluate.check_eval_config(evaluate.EvalConfig(epochs=0))
  with pytest.raises(ConfigError, match='dsa_strategy'):
    evaluate.check_eval_config(evaluate.EvalConfig(dsa_strategy='crop_blur'))
  with pytest.raises(ConfigError, match='eval.optimizer must be one of sgd, adam'):
    evaluate.check_eval_config(evaluate.EvalConfig(optimizer='lion'))
  with pytest.raises(ConfigError, match='eval.lr_decay_epoch_frac'):
    evaluate.check_eval_config(evaluate.EvalConfig(lr_decay_epoch_frac=0.0))


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'jaxdd.evaluate', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('args, message', [
    (['--data=imagenet99', '--random_ipc=1'], 'data'),
    (['--data=digits', '--random_ipc=1', '--model=resnet99'], '--model'),
    (['--data=digits', '--random_ipc=1', '--seeds=-2'], '--seeds'),
    (['--data=digits', '--distilled=/nonexistent/distilled.npz'], 'does not exist'),
    (['--data=npz:/nonexistent/x.npz', '--random_ipc=1'], '/nonexistent/x.npz'),
    (['--data=digits'], 'exactly one of'),
])
def test_cli_errors_are_one_line_without_traceback(args, message):
  proc = _cli(*args)
  assert proc.returncode != 0
  err_lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(err_lines) == 1 and message in err_lines[0], proc.stderr
  assert 'Traceback' not in proc.stderr


def test_cli_random_subset_writes_results(tmp_path):
  proc = _cli('--data=digits', '--random_ipc=2', '--seeds=2', '--epochs=3',
              f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr
  res = json.loads((tmp_path / 'results.json').read_text())
  for k in ('accuracy_mean', 'accuracy_std', 'accuracies', 'ipc', 'model', 'seconds'):
    assert k in res
  assert len(res['accuracies']) == 2 and res['ipc'] == 2
  assert 'accuracy' in proc.stdout


def test_seed_loops_vmap_and_map_give_the_same_accuracies():
  x, y = _tiny_set()
  model = models.get_model('convnet', 3, image_shape=(8, 8, 1), **TINY)
  cfg = evaluate.EvalConfig(epochs=4, batch_size=4, dsa=True)
  res = {how: evaluate.evaluate_synset(jax.random.key(2), model, x, y, x, y, num_seeds=3,
                                       cfg=cfg, seed_loop=how)
         for how in ('vmap', 'map')}
  np.testing.assert_allclose(res['vmap']['accuracies'], res['map']['accuracies'])
  np.testing.assert_allclose(res['vmap']['final_train_loss_mean'],
                             res['map']['final_train_loss_mean'], rtol=1e-4)
  with pytest.raises(ConfigError, match='seed_loop'):
    evaluate.evaluate_synset(jax.random.key(2), model, x, y, x, y, num_seeds=1, cfg=cfg,
                             seed_loop='pmap')
