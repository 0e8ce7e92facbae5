"""Training and testing under the relabel protocol: the loss, the batch augmentation,
one student's training run (``make_relabel_train_fn``) and ``evaluate_relabel``.

The step, the batches, the optimizers, the losses and the weight EMA are
``jaxdd.train``'s; this module adds the teacher's online labels and the chunks of
training between test evaluations.

See the ``jaxdd.sre.relabel`` package docstring for the protocol and how it differs from
the authors' code.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import evaluate
from jaxdd import sharding
from jaxdd.augment import batch as ba
from jaxdd.errors import ConfigError, DataError, is_int
from jaxdd.sre.relabel.config import (RelabelConfig, check_relabel_config, eval_epochs,
                                      lr_schedule)
from jaxdd.train import batches, members, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib


# ----------------------------------------------------------------------------------
# Optimizer, loss.
# ----------------------------------------------------------------------------------


def _optimizer(cfg: RelabelConfig, steps_per_epoch: int):
  # AdamW (decoupled decay, the authors' default) or SGD with coupled decay.
  return optim.optimizer(cfg.optimizer, lr_schedule(cfg, steps_per_epoch),
                         momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def relabel_loss(cfg: RelabelConfig, student_logits, teacher_logits, hard_labels):
  """The loss named by ``cfg.loss`` on one batch (scalar)."""
  if cfg.loss == 'kl':
    return losses_lib.kl_loss(student_logits, teacher_logits, cfg.temperature)
  return losses_lib.edc_loss(student_logits, teacher_logits, hard_labels, cfg.ce_weight)


# ----------------------------------------------------------------------------------
# Augmentation: crop, flip, batch mixing (``jaxdd.augment.batch``).
# ----------------------------------------------------------------------------------


def augment_batch(key, x, cfg: RelabelConfig) -> jax.Array:
  """Crop, flip, then mix x [N, H, W, C], as configured; the teacher and the student
  both see this. Crops and flips are per image (torchvision transforms in the authors'
  data loaders), the CutMix box / Mixup λ one for the batch."""
  k_crop, k_flip, k_mix = jax.random.split(key, 3)
  if cfg.crop == 'rrc':
    x = ba.random_resized_crop(k_crop, x, cfg.rrc_scale, cfg.rrc_ratio)
  elif cfg.crop == 'pad':
    x = ba.pad_crop(k_crop, x, cfg.crop_padding)
  if cfg.flip:
    x = ba.random_flip(k_flip, x)
  if cfg.mix == 'cutmix':
    x = ba.cutmix(k_mix, x, cfg.mix_alpha)
  elif cfg.mix == 'mixup':
    x = ba.mixup(k_mix, x, cfg.mix_alpha)
  return x



# ----------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------


def make_relabel_train_fn(student_model, image_shape, num_images: int, cfg: RelabelConfig,
                          teacher_fn, eval_fn=None):
  """Builds ``train(key, images, hard_labels)`` for the relabel protocol.

  One step: batch ``perm[(i·B + arange(B)) mod N]`` of the epoch's permutation
  (``train.batches.step_rows``), augment (``augment_batch``), teacher logits on the
  augmented batch (no gradient), one optimizer step on ``relabel_loss`` with the student
  in train mode (``train.step.supervised_step``), then the weight EMA
  (``train.optim.ema_update``). Keys: ``init, data, aug = split(key, 3)``
  (``train.members.streams``); epoch e permutes with ``fold_in(data, e)``, step s
  augments with ``fold_in(aug, s)``.

  Args:
    student_model: a Flax module (``jaxdd.models.get_model``).
    image_shape: (H, W, C).
    num_images: N of the distilled set.
    cfg: the protocol's settings.
    teacher_fn: ``x [B,H,W,C] -> logits [B, K]``, e.g. ``make_teacher_fn(...)``.
    eval_fn: optional ``variables -> scalar`` (the test accuracy), evaluated after the
      epochs of ``eval_epochs(cfg)``.

  Returns:
    ``train(key, images [N,H,W,C], hard_labels int [N])`` returning ``(variables,
    losses [epochs · steps_per_epoch])``, and with ``eval_fn`` also ``scores
    [len(eval_epochs(cfg))]``. ``variables`` are the evaluated ones: the EMA weights
    (with the live batch statistics) if ``ema_decay > 0`` and the last epoch is at or
    past ``ema_start_epoch``. The training trajectory does not depend on ``eval_fn``.
  """
  check_relabel_config(cfg)
  batch, spe = batches.epoch_size(num_images, cfg.batch_size)
  tx = _optimizer(cfg, spe)
  decay = cfg.ema_decay
  use_ema = decay > 0

  def train(key, images, hard_labels):
    keys = members.streams(key)
    state = step_lib.init_state(student_model, tx, keys.init, image_shape)
    carry = (state, state.variables['params'] if use_ema else ())

    def step(carry, s):
      state, ema = carry
      idx = batches.step_rows(keys.data, s, num_images, batch, spe)
      x = augment_batch(jax.random.fold_in(keys.aug, s), images[idx], cfg)
      teacher_logits = jax.lax.stop_gradient(teacher_fn(x))
      labels = hard_labels[idx]
      state, loss, _ = step_lib.supervised_step(
          student_model, tx, state, x,
          lambda logits: relabel_loss(cfg, logits, teacher_logits, labels))
      if use_ema:
        ema = optim.ema_update(ema, state.variables['params'], decay)
      return (state, ema), loss

    def run(carry, first_step, num_steps):
      return jax.lax.scan(step, carry, first_step + jnp.arange(num_steps))

    def evaluated(carry, epoch):
      (variables, _), ema = carry
      if not use_ema:
        return variables
      swap = epoch >= cfg.ema_start_epoch
      params = jax.tree_util.tree_map(lambda e, p: jnp.where(swap, e, p), ema,
                                      variables['params'])
      return {**variables, 'params': params}

    last = cfg.epochs - 1
    if eval_fn is None:
      carry, losses = run(carry, 0, cfg.epochs * spe)
      return evaluated(carry, last), losses

    # Train up to the window without evaluating, then in chunks of eval_every epochs
    # each followed by one evaluation: no lax.cond, which vmap over seeds would turn
    # into evaluating after every epoch.
    epochs = eval_epochs(cfg)
    every = 1 if cfg.readout == 'final' else cfg.eval_every
    start = int(epochs[0]) + 1 - every
    carry, head = run(carry, 0, start * spe)

    def chunk(carry, j):
      carry, losses = run(carry, (start + j * every) * spe, every * spe)
      return carry, (losses, eval_fn(evaluated(carry, start + (j + 1) * every - 1)))

    carry, (tail, scores) = jax.lax.scan(chunk, carry, jnp.arange(len(epochs)))
    return evaluated(carry, last), jnp.concatenate([head, tail.reshape(-1)]), scores

  return train


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _train_and_test(model, image_shape, cfg, seed_loop, keys, teacher_fn, images, labels,
                    x_test, y_test):
  accuracy = evaluate.make_accuracy_fn(model, cfg)
  train = make_relabel_train_fn(model, image_shape, images.shape[0], cfg, teacher_fn,
                                eval_fn=lambda v: accuracy(v, x_test, y_test))

  def one_seed(key):
    _, losses, scores = train(key, images, labels)
    return scores, losses[-1]

  return members.over_members(one_seed, keys, seed_loop)


def evaluate_relabel(key, student_model, teacher_fn, images, labels, x_test, y_test,
                     num_seeds: int, cfg: RelabelConfig = RelabelConfig(), *,
                     seed_loop: str = 'auto'):
  """Trains ``num_seeds`` students on the teacher's online soft labels; tests them.

  Args:
    key: PRNG key; seed i uses ``fold_in(key, i)`` (init, order, augmentation).
    student_model: a Flax module.
    teacher_fn: ``x -> logits``; a ``make_teacher_fn`` Partial keeps the teacher's
      weights out of the compiled constants, a plain function is closed over.
    images: float32 [N, H, W, C], preprocessed like ``x_test``.
    labels: int [N] class ids (used by the 'edc' loss only).
    x_test, y_test: [M, H, W, C], int [M].
    num_seeds: students trained in one compiled program
      (``train.members.over_members``).
    cfg: the protocol's settings.
    seed_loop: 'auto', 'vmap' or 'map', see ``train.members.over_members``.

  Returns:
    dict with ``accuracies`` (per seed, the ``cfg.readout`` number), ``accuracy_mean``,
    ``accuracy_std``, ``final_accuracies`` and ``final_accuracy_mean`` (after the last
    epoch), ``final_train_loss_mean``, ``readout``.
  """
  check_relabel_config(cfg)
  if not is_int(num_seeds) or num_seeds <= 0:
    raise ConfigError(f'seeds must be a positive integer, got {num_seeds}')
  labels = np.asarray(labels)
  if labels.ndim != 1 or labels.shape[0] != np.shape(images)[0]:
    raise DataError(f'relabel needs one class id per image: labels have shape '
                    f'{labels.shape}, images {np.shape(images)}')
  # Lists would make the (static) config unhashable under jit.
  cfg = cfg._replace(milestones=tuple(cfg.milestones), rrc_scale=tuple(cfg.rrc_scale),
                     rrc_ratio=tuple(cfg.rrc_ratio))
  if not isinstance(teacher_fn, jax.tree_util.Partial):
    teacher_fn = jax.tree_util.Partial(teacher_fn)
  images = jnp.asarray(images, jnp.float32)
  keys = members.member_keys(key, num_seeds)
  scores, final_loss = _train_and_test(
      student_model, tuple(images.shape[1:]), cfg, seed_loop, keys, teacher_fn, images,
      jnp.asarray(labels, jnp.int32), jnp.asarray(x_test, jnp.float32),
      jnp.asarray(y_test, jnp.int32))
  # to_host: on several processes the students are spread over all of them.
  scores = np.asarray(sharding.to_host(scores), np.float64)   # [seeds, evaluations]
  final_loss = sharding.to_host(final_loss)
  accs = scores.max(axis=1) if cfg.readout == 'best_last_20' else scores[:, -1]
  return {
      'accuracies': [float(a) for a in accs],
      'accuracy_mean': float(accs.mean()),
      'accuracy_std': float(accs.std()),
      'final_accuracies': [float(a) for a in scores[:, -1]],
      'final_accuracy_mean': float(scores[:, -1].mean()),
      'final_train_loss_mean': float(np.mean(final_loss)),
      'readout': cfg.readout,
  }
