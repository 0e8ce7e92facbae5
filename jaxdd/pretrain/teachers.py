"""The squeeze stage: pretrained teachers for SRe2L / CFM (UniDD) / EDC; train, store, load.

The squeeze-recover-relabel family (docs/methods.md §1 "SRe2L", §2 "UniDD", "EDC")
synthesises images against networks *pretrained on the real data*: their batch-norm
running statistics (SRe2L's recover loss), the statistics of their layer inputs over
the train set (CFM, EDC; ``objectives.statistics``) and their logits (relabelling).
This module trains those teachers. The ``TeacherConfig`` defaults are CFM's CIFAR-10
squeeze (UniDD paper 001, appendix Table 2, the usual CIFAR recipe SRe2L's squeeze
also uses): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, cosine schedule,
200 epochs, RandomCrop(padding 4) + HorizontalFlip. EDC trains several backbones in
turn (docs/methods.md §2 EDC "Teachers"): ``load_or_train_teacher_sets`` takes a list of
configs.

Like ``jaxdd.pretrain.experts``: all teachers of one architecture train at once in one
compiled program (``train.members.over_members``), one jitted epoch (a ``lax.scan`` over
its steps of ``train.step.supervised_step``) per host iteration with a progress line and
ETA; the shuffle, the optimizers and the keys are ``jaxdd.train``'s too, the crop/flip
and the sets' metadata this module's. Storage and the cache (orbax + JSON, keyed by
digests of the data + model + config) are ``jaxdd.pretrain.teacher_store``; reading
trained sets (``num_teachers``, ``teacher``, ``teacher_logits``,
``evaluate_teachers``) is ``jaxdd.pretrain.teacher_eval``. Both import this module,
never the other way round.

Differences from the authors' PyTorch training, on purpose:

  * The last batch of an epoch wraps around to the start of the same epoch's
    permutation (``train.batches.wrapped_batch``, as ``evaluate.make_train_fn``),
    instead of PyTorch's smaller last batch: shapes stay static, and with batch norm a
    masked short batch would change the batch statistics. Every image is still seen at
    least once per epoch.
  * Random crop is a translation by U{-pad..pad} per axis with zero fill *in the
    preprocessed space* (``batch_augment.pad_crop``); torchvision pads raw pixels with 0
    (black) before normalising. Flip is applied after the crop (the same law).
  * The cosine schedule is PyTorch's ``CosineAnnealingLR(T_max=epochs)`` stepped once
    per epoch: lr_e = lr·(1 + cos(π·e/E))/2, constant within epoch e
    (``train.optim.cosine_factor``).
  * Weight decay (SGD) is coupled, PyTorch-style, and applies to every parameter,
    batch-norm scales and biases included (``SGD(model.parameters(), ...)``).

Keys (the contract the tests check): teacher ``i`` uses ``k_i = fold_in(key(seed),
i)`` (``train.members.member_key``); ``init, data, aug = split(k_i, 3)``; epoch ``e``
shuffles with ``fold_in(data, e)``; its step ``j`` augments with ``fold_in(fold_in(aug,
e), j)``. So teacher ``i`` is the same network whether trained alone or with others.
"""

import functools
import time
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import config_fields as cf
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.augment import batch as batch_augment
from jaxdd.errors import ConfigError, DataError, is_int
from jaxdd.train import batches, members, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib

SECTION = 'objective.teachers'   # config errors name SECTION.<field>
OPTIMIZERS = ('sgd', 'adamw')
LR_SCHEDULES = ('cosine', 'constant')
# The keyword arguments of ``models.get_model`` a teacher config may set.
MODEL_KWARGS = ('width', 'depth', 'norm', 'act', 'pooling', 'conv_impl')


class TeacherConfig(NamedTuple):
  """How teachers are trained (defaults: CFM's CIFAR-10 squeeze, paper 001 Table 2).

  Attributes:
    model: a name of ``models.MODEL_NAMES`` ('convnet', 'resnet18', 'convnet_bn', ...).
    model_kw: keyword arguments of ``models.get_model`` (keys in ``MODEL_KWARGS``);
      teachers are batch-norm nets, hence the default ``{'norm': 'batchnorm'}``
      (use ``{}`` for models whose name fixes the norm, e.g. 'resnet18_bn').
    epochs: passes over the train set (CIFAR-10: 200, CIFAR-100: 100).
    batch_size: minibatch size (capped at the train-set size).
    optimizer: 'sgd' (momentum ``momentum``, coupled weight decay) or 'adamw'
      (decoupled weight decay, PyTorch's AdamW).
    lr: peak learning rate.
    momentum: SGD momentum (ignored by 'adamw').
    weight_decay: SGD's L2 term added to the gradient, or AdamW's decay.
    lr_schedule: 'cosine' (per epoch, to 0 at the end) or 'constant'.
    crop_pad: random-crop padding in pixels (RandomCrop(size, padding=crop_pad));
      0 turns it off.
    flip: random horizontal flip with probability 1/2 (off for digits / MNIST).
    num_teachers: networks of this architecture trained at once.
    seed: base seed; teacher ``i`` uses ``fold_in(key(seed), i)``.
    seed_loop: 'auto', 'map' or 'vmap', see ``train.members.over_members``.
    test_batch_size: test images scored per chunk.
  """
  model: str = 'convnet'
  model_kw: Mapping[str, Any] = types.MappingProxyType({'norm': 'batchnorm'})
  epochs: int = 200
  batch_size: int = 128
  optimizer: str = 'sgd'
  lr: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 5e-4
  lr_schedule: str = 'cosine'
  crop_pad: int = 4
  flip: bool = True
  num_teachers: int = 1
  seed: int = 0
  seed_loop: str = 'auto'
  test_batch_size: int = 1000


# field -> (accepted?, what is accepted), ``config_fields.check_fields``.
CHECKS = {
    'model': (lambda v: isinstance(v, str) and v.lower() in models_lib.MODEL_NAMES,
              'one of ' + ', '.join(models_lib.MODEL_NAMES)),
    'model_kw': (lambda v: isinstance(v, Mapping) and set(v) <= set(MODEL_KWARGS),
                 'a mapping with keys among ' + ', '.join(MODEL_KWARGS)),
    'epochs': cf.positive_int(),
    'batch_size': cf.positive_int(),
    'optimizer': cf.one_of(OPTIMIZERS),
    'lr': cf.positive_num(),
    'momentum': cf.fraction(),
    'weight_decay': cf.non_negative_num(),
    'lr_schedule': cf.one_of(LR_SCHEDULES),
    'crop_pad': cf.non_negative_int(),
    'flip': cf.boolean(),
    'num_teachers': cf.positive_int(),
    'seed': cf.seed32(),
    'seed_loop': cf.one_of(members.MEMBER_LOOPS),
    'test_batch_size': cf.positive_int(),
}


def check_teacher_config(cfg: TeacherConfig) -> None:
  """Raises ConfigError naming ``objective.teachers.<field>`` for an invalid value.

  Values of ``model_kw`` that depend on the image shape are checked by
  ``make_teacher_model``.
  """
  if not isinstance(cfg, TeacherConfig):
    raise ConfigError(f'{SECTION} must be a TeacherConfig, got {type(cfg).__name__}')
  cf.check_fields(cfg, CHECKS, SECTION)


def make_teacher_model(cfg: TeacherConfig, num_classes: int, image_shape):
  """``models.get_model(cfg.model, num_classes, image_shape=..., **cfg.model_kw)``.

  Raises:
    ConfigError: from ``check_teacher_config``, or a model option (prefixed with
      ``objective.teachers.model_kw``), or ``crop_pad`` not smaller than the image.
  """
  check_teacher_config(cfg)
  try:
    model = models_lib.get_model(cfg.model, num_classes, image_shape=tuple(image_shape),
                                 **dict(cfg.model_kw))
  except ConfigError as e:
    raise ConfigError(f'{SECTION}.model_kw: {e}') from None
  if cfg.crop_pad >= min(image_shape[0], image_shape[1]):
    raise ConfigError(f'{SECTION}.crop_pad must be smaller than the image side '
                      f'{min(image_shape[:2])}, got {cfg.crop_pad}')
  return model


def config_dict(cfg: TeacherConfig) -> dict:
  """JSON-able dict of ``cfg`` (the 'config' entry of a stored set's metadata; inverse:
  ``teacher_store.config_from_dict``)."""
  return {**cfg._asdict(), 'model_kw': dict(cfg.model_kw)}


class Teachers(NamedTuple):
  """A set of pretrained teachers of one architecture.

  Attributes:
    model: the Flax module (``models.get_model``).
    variables: flax variables {'params', 'batch_stats'} (no 'batch_stats' for models
      without batch norm), every leaf with a leading teacher axis [T, ...]; numpy.
    meta: JSON-able dict (config, data digests, training curves, 'test_accuracy' [T]).
  """
  model: Any
  variables: dict
  meta: dict | None = None


# ----------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------


def augment_batch(key, x, crop_pad: int, flip: bool) -> jax.Array:
  """torchvision's RandomCrop(size, padding=crop_pad) then RandomHorizontalFlip(0.5),
  per sample, on x [N, H, W, C]: out[n, r, c] = x[n, r + dh_n, c + dw_n] (0 outside),
  dh, dw ~ U{-pad..pad}, then mirrored along W with probability 1/2
  (``batch_augment.pad_crop``, ``batch_augment.random_flip``)."""
  k_crop, k_flip = jax.random.split(key)
  x = batch_augment.pad_crop(k_crop, x, crop_pad)
  if flip:
    x = batch_augment.random_flip(k_flip, x)
  return x


def _optimizer(cfg: TeacherConfig, steps_per_epoch: int):
  """SGD (coupled decay) or AdamW with the configured schedule."""
  lr = cfg.lr
  if cfg.lr_schedule == 'cosine':
    # CosineAnnealingLR(T_max=epochs) stepped per epoch: constant within an epoch.
    lr = optim.per_epoch(cfg.lr, steps_per_epoch,
                         lambda epoch: optim.cosine_factor(epoch, cfg.epochs))
  return optim.optimizer(cfg.optimizer, lr, momentum=cfg.momentum,
                         weight_decay=cfg.weight_decay)


def make_init_fn(model, image_shape, cfg: TeacherConfig, steps_per_epoch: int):
  """Builds ``init(key) -> TrainState`` of one teacher (init stream of key)."""
  tx = _optimizer(cfg, steps_per_epoch)
  return lambda key: step_lib.init_state(model, tx, members.streams(key).init,
                                         image_shape)


def make_epoch_fn(model, cfg: TeacherConfig, num_train: int):
  """Builds ``epoch(state, key, epoch, x, y) -> (state, mean loss, accuracy)``.

  One pass of minibatch training over a random permutation of the train set (a
  ``lax.scan`` over ``ceil(N / batch)`` steps), each step
  θ ← opt(θ, ∇ mean_{i∈B} CE(f_θ(aug(x_i)), y_i)) with batch norm in train mode: the
  running statistics become 0.9·old + 0.1·(batch mean, unbiased batch variance)
  (``models.layers.Norm``, PyTorch's momentum 0.1).

  Args (of the returned function):
    state: the ``train.step.TrainState`` of one teacher.
    key: the teacher's key ``k_i``.
    epoch: int32 scalar (traced), folds into the data and augmentation keys.
    x: float32 [N, H, W, C]; y: int32 [N].

  Returns:
    (state, mean training loss, training accuracy) over the augmented batches.
  """
  batch, steps = batches.epoch_size(num_train, cfg.batch_size)
  tx = _optimizer(cfg, steps)

  def epoch_fn(state, key, epoch, x, y):
    keys = members.streams(key)
    perm = batches.epoch_permutation(keys.data, epoch, num_train)
    aug_key = jax.random.fold_in(keys.aug, epoch)
    num_classes = model.num_classes

    def step(state, j):
      rows = batches.wrapped_batch(perm, j, batch)  # wraps: static shape
      xb, yb = x[rows], y[rows]
      xb = augment_batch(jax.random.fold_in(aug_key, j), xb, cfg.crop_pad, cfg.flip)
      targets = jax.nn.one_hot(yb, num_classes)
      state, loss, logits = step_lib.supervised_step(
          model, tx, state, xb, lambda z: losses_lib.label_loss(z, targets, 'ce'))
      return state, (loss, jnp.mean(jnp.argmax(logits, -1) == yb))

    state, (step_losses, accs) = jax.lax.scan(step, state, jnp.arange(steps))
    return state, jnp.mean(step_losses), jnp.mean(accs)

  return epoch_fn


@functools.partial(jax.jit, static_argnames=('model', 'image_shape', 'cfg', 'n'))
def _init_all(ids, seed, *, model, image_shape, cfg, n):
  _, steps_per_epoch = batches.epoch_size(n, cfg.batch_size)
  init_fn = make_init_fn(model, image_shape, cfg, steps_per_epoch)
  return members.over_members(lambda i: init_fn(members.member_key(seed, i)), ids,
                              cfg.seed_loop)


@functools.partial(jax.jit, static_argnames=('model', 'cfg'), donate_argnums=(0,))
def _epoch_all(states, ids, seed, epoch, x, y, *, model, cfg):
  """One epoch of every teacher (``train.members.over_members``): (states, loss [T],
  acc [T])."""
  epoch_fn = make_epoch_fn(model, cfg, x.shape[0])

  def one(state_and_id):
    state, i = state_and_id
    return epoch_fn(state, members.member_key(seed, i), epoch, x, y)

  return members.over_members(one, (states, ids), cfg.seed_loop)


def check_teacher_data(x, y, num_classes: int, what: str) -> None:
  """Raises DataError unless x is [N, H, W, C] with N >= 1 and y holds N labels in
  [0, num_classes); ``what`` ('training', 'test') names the split in the message."""
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 4 or x.shape[0] == 0:
    raise DataError(f'teacher {what} images have shape {x.shape}, expected [N, H, W, C]'
                    ' with N >= 1')
  if y.shape != (x.shape[0],):
    raise DataError(f'teacher {what} labels have shape {y.shape}, expected [{x.shape[0]}]')
  if y.min() < 0 or y.max() >= num_classes:
    raise DataError(f'teacher {what} labels must be in [0, {num_classes}), got '
                    f'[{y.min()}, {y.max()}]')


def train_teachers(x_train, y_train, num_classes: int, cfg: TeacherConfig, *,
                   first_teacher: int = 0, verbose: bool = True) -> Teachers:
  """Trains ``cfg.num_teachers`` networks of one architecture at once on the real data.

  The squeeze stage of SRe2L (docs/methods.md §1 SRe2L; CFM: paper 001 appendix Table 2):
  minimise E CE(f_θ(aug(x)), y) over the train set with the configured optimizer.
  One jitted epoch function, compiled once, advances all teachers
  (``train.members.over_members``) by one epoch; the host prints one progress line per
  epoch.

  Args:
    x_train: float32 [N, H, W, C] (preprocessed), y_train: int [N].
    num_classes: K.
    cfg: ``TeacherConfig``.
    first_teacher: teachers ``first_teacher .. first_teacher + num_teachers - 1`` are
      trained (their keys depend only on ``cfg.seed`` and the index).
    verbose: print the per-epoch progress line.

  Returns:
    ``Teachers`` whose variables (numpy) have a leading axis [num_teachers]; meta holds
    the config and the per-epoch training loss and accuracy [epochs][teachers].

  Raises:
    ConfigError: bad ``cfg``; DataError: bad data; FloatingPointError: a non-finite
      training loss (checked after every epoch).
  """
  check_teacher_data(x_train, y_train, num_classes, 'training')
  image_shape = tuple(int(s) for s in np.shape(x_train)[1:])
  model = make_teacher_model(cfg, num_classes, image_shape)
  if not is_int(first_teacher) or first_teacher < 0:
    raise ConfigError(f'first_teacher must be an integer >= 0, got {first_teacher!r}')
  n = int(np.shape(x_train)[0])
  x = jnp.asarray(x_train, jnp.float32)
  y = jnp.asarray(y_train, jnp.int32)
  ids = jnp.arange(first_teacher, first_teacher + cfg.num_teachers, dtype=jnp.int32)
  seed = jnp.int32(cfg.seed)
  # Only what the compiled program depends on is static (model_kw is in `model`).
  static_cfg = cfg._replace(model_kw=None, num_teachers=0, seed=0, test_batch_size=0)
  label = f'teachers {cfg.model} {first_teacher}..{first_teacher + cfg.num_teachers - 1}'

  t_start = time.time()
  states = _init_all(ids, seed, model=model, image_shape=image_shape, cfg=static_cfg, n=n)
  losses, accs, seconds = [], [], []
  for e in range(cfg.epochs):
    t0 = time.time()
    states, loss, acc = _epoch_all(states, ids, seed, jnp.int32(e), x, y, model=model,
                                   cfg=static_cfg)
    # to_host: on several processes the teachers are spread over all of them.
    losses.append(sharding.to_host(loss).tolist())  # blocks until the epoch is done
    accs.append(sharding.to_host(acc).tolist())
    seconds.append(time.time() - t0)
    if not np.all(np.isfinite(losses[-1])):
      raise FloatingPointError(f'{label}: non-finite training loss (cross-entropy) in '
                               f'epoch {e + 1}: {losses[-1]}; lower objective.teachers.lr')
    if verbose:
      # Epoch 0 includes the compilation; the ETA uses the later epochs when it can.
      per_epoch = np.mean(seconds[1:] if e else seconds)
      print(f'{label}: epoch {e + 1}/{cfg.epochs}, {seconds[-1]:.1f} s, loss '
            f'{np.mean(losses[-1]):.4f}, acc {np.mean(accs[-1]):.4f}, '
            f'ETA {per_epoch * (cfg.epochs - e - 1):.0f} s', flush=True)
  variables = jax.tree_util.tree_map(sharding.to_host, states.variables)
  meta = {
      'config': config_dict(cfg), 'first_teacher': int(first_teacher),
      'num_train': n, 'image_shape': list(image_shape), 'num_classes': int(num_classes),
      'seconds': round(time.time() - t_start, 3),
      'epoch_seconds': [round(s, 3) for s in seconds],
      'train_loss': losses, 'train_acc': accs,  # [epochs][teachers]
  }
  return Teachers(model, variables, meta)
