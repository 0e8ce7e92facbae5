"""The evaluation protocol: train fresh networks on a (distilled) set, score on real test data.

This is the DC/DSA/DM/MTT protocol (`DCrepo:utils.py evaluate_synset`, docs/methods.md §0):
SGD with momentum 0.9 and weight decay 5e-4, batch 256, the learning rate multiplied by
0.1 half-way through, DSA augmentation per sample, test accuracy on the real test split,
mean ± std over seeds. What makes it fast is that all seeds train in **one compiled
program**: a ``lax.scan`` over steps, vmapped over seeds on accelerators and looped
over them (``lax.map``) on the CPU (``train.members.over_members``), compiled once.
The step, the batches, the optimizer and the losses are ``jaxdd.train``'s; this module
is the protocol: its settings, the DSA of every batch and the test accuracy.

Differences from the reference, on purpose:
  * DCrepo trains ``E + 1`` epochs and decays after epoch ``E // 2 + 1``; here the run
    has exactly ``epochs`` epochs and the decay happens after ``epochs // 2`` of them.
  * A batch never straddles two epochs in DCrepo (the last batch is smaller); to keep
    shapes static, the last batch of an epoch here wraps around to the start of the
    same epoch's permutation. With one batch per epoch (IPC ≤ 25 on 10 classes) the
    two are identical.

Command line (writes ``DIR/results.json`` and prints one summary line)::

    python -m jaxdd.evaluate --data=digits --random_ipc=10 --model=convnet --seeds=5
    python -m jaxdd.evaluate --data=npz:../shared/data/mnist.npz --distilled=run/distilled.npz
"""

import functools
import json
import math
import os
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from jaxdd.augment import dsa as dsa_lib
from jaxdd import data as data_lib
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.errors import ConfigError, DataError
from jaxdd.train import batches, members, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib

OPTIMIZERS = ('sgd', 'adam')


class EvalConfig(NamedTuple):
  """Settings of the evaluation protocol (defaults: DC/DM with DSA, docs/methods.md §0).

  Attributes:
    epochs: passes over the synthetic set (DCrepo: 300 without DSA, 1000 with).
    batch_size: minibatch size (capped at the set size).
    lr: initial learning rate (MTT/DATM evaluate with their learned ``syn_lr``).
    optimizer: 'sgd' (DC/DM/MTT: momentum SGD) or 'adam' (RaT-BPTT and PoDD evaluate
      with the inner loop's Adam 1e-3 for a number of steps, no decay, no weight
      decay: ``Simple_Dataset_Distillation`` and ``PoDD:src/PoDD.py init_train``).
    momentum: SGD momentum (unused by Adam).
    weight_decay: coupled (PyTorch-style) L2 decay added to the gradient.
    lr_decay_epoch_frac: the lr is multiplied by 0.1 after this fraction of epochs.
    dsa: whether to apply per-sample DSA to every training batch.
    dsa_strategy: DSA groups, see ``jaxdd.augment.dsa``.
    loss: 'ce' (labels are class ids or probabilities), 'soft_ce' (labels are logits,
      softmax-ed first, as DATM), 'mse' (regression to the labels, as FRePo/KIP).
    test_batch_size: test images scored per chunk.
  """
  epochs: int = 300
  batch_size: int = 256
  lr: float = 0.01
  optimizer: str = 'sgd'
  momentum: float = 0.9
  weight_decay: float = 5e-4
  lr_decay_epoch_frac: float = 0.5
  dsa: bool = True
  dsa_strategy: str = dsa_lib.DEFAULT_STRATEGY
  loss: str = 'ce'
  test_batch_size: int = 1000


def check_eval_config(cfg: EvalConfig) -> None:
  """Raises ConfigError for an out-of-range field, naming it and what is accepted."""
  if cfg.epochs <= 0:
    raise ConfigError(f'eval.epochs must be a positive integer, got {cfg.epochs}')
  if cfg.batch_size <= 0:
    raise ConfigError(f'eval.batch_size must be a positive integer, got {cfg.batch_size}')
  if not cfg.lr > 0:
    raise ConfigError(f'eval.lr must be > 0, got {cfg.lr}')
  if cfg.optimizer not in OPTIMIZERS:
    raise ConfigError(f'eval.optimizer must be one of {", ".join(OPTIMIZERS)}, '
                      f'got {cfg.optimizer!r}')
  if not 0 < cfg.lr_decay_epoch_frac <= 1:
    raise ConfigError(f'eval.lr_decay_epoch_frac must be in (0, 1] (1 = no decay), '
                      f'got {cfg.lr_decay_epoch_frac}')
  if cfg.loss not in losses_lib.LABEL_LOSSES:
    raise ConfigError(f'eval.loss must be one of {", ".join(losses_lib.LABEL_LOSSES)}, '
                      f'got {cfg.loss!r}')
  if cfg.dsa:
    dsa_lib.parse_strategy(cfg.dsa_strategy)


def make_train_fn(model, image_shape, num_images: int, cfg: EvalConfig):
  """Builds ``train(key, images, targets, choice_key) -> (variables, losses)``.

  The whole training run of one network is one ``lax.scan`` over
  ``epochs * steps_per_epoch`` steps (``train.step.supervised_step`` on the
  wrap-around batches of ``train.batches.step_rows``); ``vmap`` it over ``key`` to
  train many seeds at once. ``key`` is a member key (``train.members``): the init,
  the data order and, folded with the step, the DSA transform parameters come from
  its streams. ``choice_key`` picks the DSA group of each step and is shared by the
  seeds (unbatched under ``vmap``), so each step computes only the chosen group.
  """
  batch, steps_per_epoch = batches.epoch_size(num_images, cfg.batch_size)
  total_steps = cfg.epochs * steps_per_epoch
  decay_step = int(cfg.epochs * cfg.lr_decay_epoch_frac) * steps_per_epoch
  tx = optim.optimizer(cfg.optimizer, optim.step_decay(cfg.lr, decay_step),
                       momentum=cfg.momentum, weight_decay=cfg.weight_decay)
  strategy = cfg.dsa_strategy

  def train(key, images, targets, choice_key):
    keys = members.streams(key)
    state = step_lib.init_state(model, tx, keys.init, image_shape)

    def step(state, step_index):
      idx = batches.step_rows(keys.data, step_index, num_images, batch, steps_per_epoch)
      x, y = images[idx], targets[idx]
      if cfg.dsa:
        aug_key = jax.random.fold_in(keys.aug, step_index)
        x = dsa_lib.dsa(aug_key, x, strategy=strategy, siamese=False,
                        choice_key=jax.random.fold_in(choice_key, step_index))
      state, loss, _ = step_lib.supervised_step(
          model, tx, state, x, lambda logits: losses_lib.label_loss(logits, y, cfg.loss))
      return state, loss

    state, step_losses = jax.lax.scan(step, state, jnp.arange(total_steps))
    return state.variables, step_losses

  return train


def make_accuracy_fn(model, cfg: EvalConfig):
  """Builds ``accuracy(variables, x_test, y_test) -> scalar`` for one network."""

  def accuracy(variables, x_test, y_test):
    n = x_test.shape[0]
    chunk = min(cfg.test_batch_size, n)
    num_chunks = math.ceil(n / chunk)
    pad = num_chunks * chunk - n
    xs = jnp.pad(x_test, ((0, pad),) + ((0, 0),) * (x_test.ndim - 1))
    ys = jnp.pad(y_test, (0, pad), constant_values=-1)  # -1 never matches a class

    def correct(xy):
      x, y = xy
      logits, _ = models_lib.apply_model(model, variables, x, train=False)
      return jnp.sum(jnp.argmax(logits, -1) == y)

    counts = jax.lax.map(correct, (xs.reshape((num_chunks, chunk) + xs.shape[1:]),
                                   ys.reshape(num_chunks, chunk)))
    return jnp.sum(counts) / n

  return accuracy


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _train_and_test(model, image_shape, cfg, seed_loop, keys, images, targets, x_test,
                    y_test):
  train = make_train_fn(model, image_shape, images.shape[0], cfg)
  choice_key = jax.random.fold_in(keys[0], 1 << 30)
  accuracy = make_accuracy_fn(model, cfg)

  def one_seed(key):
    variables, run_losses = train(key, images, targets, choice_key)
    return accuracy(variables, x_test, y_test), run_losses[-1]

  return members.over_members(one_seed, keys, seed_loop)


def evaluate_synset(key, model, images, labels, x_test, y_test, *, num_seeds: int,
                    cfg: EvalConfig = EvalConfig(), num_classes: int | None = None,
                    seed_loop: str = 'auto'):
  """Trains ``num_seeds`` fresh networks at once on ``(images, labels)``; tests them.

  Args:
    key: PRNG key; seed ``i`` uses ``fold_in(key, i)`` for init, order and DSA.
    model: a Flax module from ``jaxdd.models.get_model``.
    images: float32 [N, H, W, C] in the data set's preprocessed space.
    labels: int [N] class ids, or float [N, K] soft labels (see ``EvalConfig.loss``).
    x_test, y_test: the real test split, [M, H, W, C] and int [M].
    num_seeds: networks trained in one compiled program.
    seed_loop: how the seeds share it, see ``train.members.over_members``.
    cfg: the protocol's settings.
    num_classes: K; inferred from soft labels or ``max(y_test) + 1`` when omitted.

  Returns:
    dict with ``accuracies`` (list of floats), ``accuracy_mean``, ``accuracy_std``,
    ``final_train_loss_mean``.
  """
  check_eval_config(cfg)
  if num_seeds <= 0:
    raise ConfigError(f'seeds must be a positive integer, got {num_seeds}')
  # Through the host: a distilled set arrives laid out on the distillation's mesh, a
  # random subset does not, and the two layouts would compile the protocol twice.
  images = jnp.asarray(np.asarray(images), jnp.float32)
  labels = np.asarray(labels)
  if num_classes is None:
    num_classes = labels.shape[1] if labels.ndim == 2 else int(np.max(y_test)) + 1
  targets = losses_lib.as_targets(labels, num_classes)
  keys = members.member_keys(key, num_seeds)
  accs, final_loss = _train_and_test(
      model, tuple(images.shape[1:]), cfg, seed_loop, keys, images, targets,
      jnp.asarray(x_test, jnp.float32), jnp.asarray(y_test, jnp.int32))
  # to_host: on several processes the seeds are spread over all of them.
  accs = np.asarray(sharding.to_host(accs), np.float64)
  final_loss = sharding.to_host(final_loss)
  return {
      'accuracies': [float(a) for a in accs],
      'accuracy_mean': float(accs.mean()),
      'accuracy_std': float(accs.std()),
      'final_train_loss_mean': float(np.mean(final_loss)),
  }


def random_subset(seed: int, ds: 'data_lib.Dataset', ipc: int):
  """A random real subset with ``ipc`` images per class (the baseline of every table)."""
  data_lib.check_ipc(ds, ipc)
  return data_lib.select_real_init(seed, ds.x_train, ds.y_train, ds.num_classes, ipc)


# ----------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------


def load_distilled(path: str) -> dict[str, Any]:
  """Reads a ``distilled.npz`` (images, labels, optional ``meta_json``)."""
  if not os.path.exists(path):
    raise DataError(f'distilled file {path!r} does not exist')
  try:
    with np.load(path, allow_pickle=False) as f:
      out = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise DataError(f'distilled file {path!r} is not a readable .npz ({e})') from None
  for name in ('images', 'labels'):
    if name not in out:
      raise DataError(f'distilled file {path!r} has no array {name!r} '
                      f'(found: {", ".join(sorted(out))})')
  out['meta'] = json.loads(str(out.pop('meta_json'))) if 'meta_json' in out else {}
  return out


def main(argv):
  del argv
  f = flags.FLAGS
  t0 = time.time()
  if (f.random_ipc is None) == (f.distilled is None):
    raise ConfigError('give exactly one of --random_ipc=K or --distilled=FILE.npz')
  if f.seeds <= 0:
    raise ConfigError(f'--seeds must be a positive integer, got {f.seeds}')
  if f.model not in models_lib.MODEL_NAMES:
    raise ConfigError(f'--model must be one of {", ".join(models_lib.MODEL_NAMES)}, '
                      f'got {f.model!r}')
  distilled = load_distilled(f.distilled) if f.distilled else None
  meta = distilled['meta'] if distilled else {}
  spec = f.data or meta.get('data')
  if not spec:
    raise ConfigError('--data is required (digits, npz:PATH or tfds:NAME)')
  zca = f.zca if f.zca is not None else meta.get('zca', 'none')
  cfg = EvalConfig(epochs=f.epochs, batch_size=f.batch_size,
                   lr=f.lr if f.lr is not None else float(meta.get('syn_lr', 0.01)),
                   optimizer=f.optimizer, weight_decay=f.weight_decay,
                   lr_decay_epoch_frac=f.lr_decay_epoch_frac, dsa=f.dsa,
                   dsa_strategy=f.dsa_strategy, loss=f.loss or meta.get('label_loss', 'ce'))
  check_eval_config(cfg)
  ds = data_lib.load_dataset(spec, zca=zca)
  if distilled is not None:
    images, labels = distilled['images'], distilled['labels']
    if tuple(images.shape[1:]) != tuple(ds.x_train.shape[1:]):
      raise DataError(f'distilled images have shape {images.shape[1:]}, but {spec} '
                      f'images have {ds.x_train.shape[1:]}')
    ipc = meta.get('ipc', images.shape[0] / ds.num_classes)
  else:
    if f.random_ipc <= 0:
      raise ConfigError(f'--random_ipc must be a positive integer, got {f.random_ipc}')
    ipc = f.random_ipc
    images, labels = random_subset(f.seed, ds, ipc)
  model = models_lib.get_model(f.model, ds.num_classes, image_shape=ds.x_train.shape[1:])
  res = evaluate_synset(jax.random.key(f.seed), model, images, labels, ds.x_test,
                        ds.y_test, num_seeds=f.seeds, cfg=cfg, num_classes=ds.num_classes)
  res.update(ipc=ipc, model=f.model, data=spec, zca=zca, seeds=f.seeds,
             source=f.distilled or f'random_ipc={ipc}', eval=cfg._asdict(),
             seconds=round(time.time() - t0, 2))
  if f.workdir:
    os.makedirs(f.workdir, exist_ok=True)
    with open(os.path.join(f.workdir, 'results.json'), 'w') as fh:
      json.dump(res, fh, indent=2)
  print(f'{res["source"]} on {spec}, {f.model}, {f.seeds} seeds: accuracy '
        f'{100 * res["accuracy_mean"]:.2f} ± {100 * res["accuracy_std"]:.2f} % '
        f'({res["seconds"]:.0f} s)')


def _define_flags():
  flags.DEFINE_string('data', None, 'data spec: digits, npz:PATH or tfds:NAME')
  flags.DEFINE_integer('random_ipc', None, 'score a random real subset with K images per class')
  flags.DEFINE_string('distilled', None, 'score the images and labels of this distilled.npz')
  flags.DEFINE_string('model', 'convnet', 'network to train')
  flags.DEFINE_integer('seeds', 5, 'networks trained at once')
  flags.DEFINE_integer('seed', 0, 'base random seed')
  flags.DEFINE_integer('epochs', 300, 'training epochs')
  flags.DEFINE_integer('batch_size', 256, 'training batch size')
  flags.DEFINE_float('lr', None, 'learning rate (default 0.01, or the learned syn_lr)')
  flags.DEFINE_enum('optimizer', 'sgd', list(OPTIMIZERS), 'sgd (momentum 0.9) or adam')
  flags.DEFINE_float('weight_decay', 5e-4, 'coupled L2 weight decay')
  flags.DEFINE_float('lr_decay_epoch_frac', 0.5, 'lr x 0.1 after this fraction (1 = never)')
  flags.DEFINE_bool('dsa', True, 'DSA augmentation during training')
  flags.DEFINE_string('dsa_strategy', dsa_lib.DEFAULT_STRATEGY,
                      'DSA groups (crop_scale_rotate for digits: no flips)')
  flags.DEFINE_string('loss', None, 'ce, soft_ce or mse (default: the file\'s, else ce)')
  flags.DEFINE_string('zca', None, 'none, raw or krr (default: the file\'s, else none)')
  flags.DEFINE_string('workdir', None, 'where results.json is written')


def run_cli(main_fn, define_flags):
  """Runs an absl main; user errors become one line on stderr and exit status 2."""

  def guarded(argv):
    try:
      main_fn(argv)
    except (ConfigError, DataError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)

  define_flags()
  app.run(guarded)


if __name__ == '__main__':
  run_cli(main, _define_flags)
