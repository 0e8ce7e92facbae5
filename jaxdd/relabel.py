"""The relabel evaluation protocol: a student learns from a teacher's soft labels, online.

SRe2L, UniDD/CFM and EDC (METHODS.md §1 "SRe2L Relabel", §2 "UniDD Eval", "EDC Eval")
do not train the evaluation network on the stored labels. Every training batch is
augmented (crop, flip, then CutMix or Mixup over the batch), a frozen teacher scores the
*augmented* batch in eval mode, and the student regresses on that output:

  * 'kl' (SRe2L, UniDD): KL(softmax(t/T) ‖ softmax(s/T)) summed over classes, divided
    by the batch size (PyTorch's ``KLDivLoss(reduction='batchmean')``), without the
    usual T² factor. T = 30 (SRe2L CIFAR), 20 (UniDD).
  * 'edc' (EDC's ``--loss-type mse_gt``): mean over all N·K entries of (s − t)², with t
    the mean logits of the teacher ensemble, plus 0.025 · CE(s, hard labels). The hard
    labels are the stored ones, not mixed by CutMix, as in EDC's code.

The structure mirrors ``jaxdd.evaluate``: one training run is one ``lax.scan``, seeds run
together through ``evaluate.over_seeds``, the test accuracy comes from
``evaluate.make_accuracy_fn``. Learning-rate schedules change once per epoch, as the
authors' ``LambdaLR`` / ``CosineAnnealingLR`` / ``MultiStepLR`` stepped after each epoch:

  * 'cosine' (SRe2L): 0.5 (1 + cos(π e / E)).
  * 'quarter_cosine' (UniDD): 0.5 (1 + cos(π e / 2E)); reaches 0.5 at e = E.
  * 'smoothed' (EDC paper, "smoothing LR schedule"): 0.5 (1 + cos(π e / ζE)) with the
    slowdown coefficient ζ (``slowdown``; the paper's ablation uses 1–3 and picks 2, the
    CIFAR-10 script passes ``--st 2``). With ζ = 2 it *is* the quarter cosine.
  * 'multistep' (EDC's CIFAR-10 ``train.sh``, ``--ls-type multisteplr``): × ``gamma``
    (0.5) at each epoch of ``milestones`` (800, 900, 950).

Weight EMA (EDC): from the first step on, ema ← d·ema + (1 − d)·params after every
optimizer step, starting from the initial weights (EDC deep-copies the model at
initialisation). Only 'params' are averaged; batch-norm statistics are the live model's
(EDC's ``EMAMODEL`` iterates over ``parameters()`` only). Evaluations at epochs
≥ ``ema_start_epoch`` use the EMA weights (EDC swaps them in for testing after epoch 800).

Read-out: 'final' is the accuracy after the last epoch. 'best_last_20' is UniDD's (and,
with EMA, EDC's) number: the best test accuracy over evaluations after every
``eval_every``-th epoch of the last ``best_window_frac`` of training; it selects on the
test set and so reads higher than 'final'.

Differences from the authors' code, on purpose:
  * As in ``jaxdd.evaluate``, a batch never straddles two epochs and the last batch of
    an epoch wraps around to the start of the same permutation (static shapes).
  * EDC also applies RandAugment before the crop; not implemented. EDC's teachers run
    under fp16 autocast; here in float32.
  * SRe2L's CIFAR relabel does not put the teacher in eval mode (its BN layers use the
    batch statistics); here every teacher is applied in eval mode.
  * 'pad' crop zero-pads in the (normalised) space of the images, i.e. with the mean
    colour, where torchvision pads raw pixels with black.
  * 'best_last_20' evaluates after epochs E − 1 − j·eval_every; UniDD's ``epoch % 10 == 9``
    with E = 1000 is the same set, EDC's ``epoch % 10 == 0`` is shifted by one epoch.
  * AdamW decays every parameter (biases and norm scales too), as UniDD and SRe2L's
    ``net.parameters()``; EDC's ``get_parameters`` may group them differently.
"""

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdd import batch_augment as ba
from jaxdd import evaluate
from jaxdd import models as models_lib
from jaxdd.errors import ConfigError, DataError
from jaxdd.experts import is_int, is_num

OPTIMIZERS = ('adamw', 'sgd')
SCHEDULES = ('cosine', 'quarter_cosine', 'smoothed', 'multistep')
LOSSES = ('kl', 'edc')
CROPS = ('rrc', 'pad', 'none')
MIXES = ('none', 'cutmix', 'mixup')
READOUTS = ('final', 'best_last_20')


class RelabelConfig(NamedTuple):
  """Settings of the relabel protocol (defaults: SRe2L's CIFAR relabel, METHODS.md §1).

  Attributes:
    epochs: passes over the distilled set (SRe2L 400, UniDD/EDC CIFAR 1000).
    batch_size: minibatch size (capped at the set size).
    optimizer: 'adamw' (β 0.9/0.999, eps 1e-8, decoupled decay) or 'sgd' (momentum,
      PyTorch-style coupled decay).
    lr: peak learning rate (1e-3 for AdamW in all three papers).
    weight_decay: 0.01 (SRe2L, UniDD, EDC).
    momentum: SGD momentum ('sgd' only).
    schedule: per-epoch lr factor, see the module docstring.
    slowdown: ζ of 'smoothed'.
    milestones: epochs of 'multistep' at which the lr is multiplied by ``gamma``.
    gamma: factor of 'multistep'.
    loss: 'kl' or 'edc', see the module docstring.
    temperature: T of 'kl'.
    ce_weight: weight of the hard-label CE of 'edc' (0.025 in EDC's CIFAR-10 script).
    crop: 'rrc' (torchvision RandomResizedCrop, bilinear), 'pad' (RandomCrop with
      ``crop_padding``, SRe2L CIFAR) or 'none'.
    rrc_scale: area fraction range of 'rrc' ((0.08, 1) CIFAR; UniDD ImageNet (0.5, 1)).
    rrc_ratio: aspect-ratio range of 'rrc'.
    crop_padding: padding of 'pad'.
    flip: random horizontal flips (turn off for digits).
    mix: 'none', 'cutmix' (UniDD, EDC; one box per batch) or 'mixup' (SRe2L).
    mix_alpha: Beta(α, α) of the mixing ratio (cutmix 1.0, mixup 0.8).
    ema_decay: weight EMA decay (EDC 0.99); 0 turns the EMA off.
    ema_start_epoch: evaluations at this epoch or later use the EMA weights.
    readout: 'final' or 'best_last_20'.
    best_window_frac: the window of 'best_last_20', as a fraction of the epochs.
    eval_every: epochs between test evaluations inside that window (UniDD/EDC 10).
    test_batch_size: test images scored per chunk.
  """
  epochs: int = 400
  batch_size: int = 128
  optimizer: str = 'adamw'
  lr: float = 1e-3
  weight_decay: float = 0.01
  momentum: float = 0.9
  schedule: str = 'cosine'
  slowdown: float = 2.0
  milestones: tuple = (800, 900, 950)
  gamma: float = 0.5
  loss: str = 'kl'
  temperature: float = 30.0
  ce_weight: float = 0.025
  crop: str = 'pad'
  rrc_scale: tuple = (0.08, 1.0)
  rrc_ratio: tuple = (3 / 4, 4 / 3)
  crop_padding: int = 4
  flip: bool = True
  mix: str = 'mixup'
  mix_alpha: float = 0.8
  ema_decay: float = 0.0
  ema_start_epoch: int = 0
  readout: str = 'final'
  best_window_frac: float = 0.2
  eval_every: int = 1
  test_batch_size: int = 1000


# The authors' CIFAR settings; set batch_size per IPC (UniDD CIFAR-10: 10/50/100 for
# IPC 1/10/50; EDC's script: 10).
PRESETS = {
    'sre2l': RelabelConfig(),
    'unidd': RelabelConfig(epochs=1000, batch_size=50, schedule='quarter_cosine',
                           temperature=20.0, crop='rrc', mix='cutmix', mix_alpha=1.0,
                           readout='best_last_20', eval_every=10),
    'edc': RelabelConfig(epochs=1000, batch_size=10, schedule='multistep', loss='edc',
                         crop='rrc', mix='cutmix', mix_alpha=1.0, ema_decay=0.99,
                         ema_start_epoch=800, readout='best_last_20', eval_every=10),
}


def _fail(field, value, accepted):
  raise ConfigError(f'relabel.{field} must be {accepted}, got {value!r}')


def check_relabel_config(cfg: RelabelConfig) -> None:
  """Raises ConfigError for an out-of-range field, naming it and what is accepted."""
  for field in ('epochs', 'batch_size', 'eval_every', 'test_batch_size'):
    v = getattr(cfg, field)
    if not is_int(v) or v < 1:
      _fail(field, v, 'a positive integer')
  choices = dict(optimizer=OPTIMIZERS, schedule=SCHEDULES, loss=LOSSES, crop=CROPS,
                 mix=MIXES, readout=READOUTS)
  for field, accepted in choices.items():
    if getattr(cfg, field) not in accepted:
      _fail(field, getattr(cfg, field), 'one of ' + ', '.join(accepted))
  for field in ('lr', 'temperature', 'slowdown', 'mix_alpha', 'weight_decay', 'ce_weight',
                'momentum', 'gamma', 'ema_decay', 'best_window_frac'):
    if not is_num(getattr(cfg, field)):
      _fail(field, getattr(cfg, field), 'a number')
  for field in ('lr', 'temperature', 'slowdown', 'mix_alpha'):
    if not getattr(cfg, field) > 0:
      _fail(field, getattr(cfg, field), '> 0')
  for field in ('weight_decay', 'ce_weight'):
    if not getattr(cfg, field) >= 0:
      _fail(field, getattr(cfg, field), '>= 0')
  if not 0 <= cfg.momentum < 1:
    _fail('momentum', cfg.momentum, 'in [0, 1)')
  if not 0 < cfg.gamma <= 1:
    _fail('gamma', cfg.gamma, 'in (0, 1]')
  ms = cfg.milestones
  if (not isinstance(ms, (tuple, list)) or not all(is_int(m) and m > 0 for m in ms)
      or list(ms) != sorted(set(ms))):
    _fail('milestones', ms, 'a tuple of increasing positive epochs')
  lo_hi = lambda p: (isinstance(p, (tuple, list)) and len(p) == 2
                     and all(is_num(v) for v in p) and 0 < p[0] <= p[1])
  if not lo_hi(cfg.rrc_scale) or cfg.rrc_scale[1] > 1:
    _fail('rrc_scale', cfg.rrc_scale, '(lo, hi) with 0 < lo <= hi <= 1')
  if not lo_hi(cfg.rrc_ratio):
    _fail('rrc_ratio', cfg.rrc_ratio, '(lo, hi) with 0 < lo <= hi')
  if not is_int(cfg.crop_padding) or cfg.crop_padding < 0:
    _fail('crop_padding', cfg.crop_padding, 'an integer >= 0')
  if not isinstance(cfg.flip, bool):
    _fail('flip', cfg.flip, 'True or False')
  if not 0 <= cfg.ema_decay < 1:
    _fail('ema_decay', cfg.ema_decay, 'in [0, 1) (0 turns the EMA off)')
  if not is_int(cfg.ema_start_epoch) or cfg.ema_start_epoch < 0:
    _fail('ema_start_epoch', cfg.ema_start_epoch, 'an integer >= 0')
  if not 0 < cfg.best_window_frac <= 1:
    _fail('best_window_frac', cfg.best_window_frac, 'in (0, 1]')


# ----------------------------------------------------------------------------------
# Learning rate, losses.
# ----------------------------------------------------------------------------------


def epoch_factor(cfg: RelabelConfig, epoch) -> jax.Array:
  """The lr multiplier of (0-based) ``epoch``, see the module docstring; any shape."""
  e = jnp.asarray(epoch, jnp.float32)
  if cfg.schedule == 'multistep':
    count = sum((e >= m).astype(jnp.float32) for m in cfg.milestones)
    return jnp.float32(cfg.gamma) ** count * jnp.ones_like(e)
  stretch = {'cosine': 1.0, 'quarter_cosine': 2.0, 'smoothed': cfg.slowdown}[cfg.schedule]
  return 0.5 * (1.0 + jnp.cos(jnp.pi * e / (stretch * cfg.epochs)))


def lr_schedule(cfg: RelabelConfig, steps_per_epoch: int) -> Callable[[Any], jax.Array]:
  """``step -> lr``: constant within an epoch, ``lr * epoch_factor(step // spe)``."""
  return lambda step: cfg.lr * epoch_factor(cfg, jnp.asarray(step) // steps_per_epoch)


def _optimizer(cfg: RelabelConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  schedule = lr_schedule(cfg, steps_per_epoch)
  if cfg.optimizer == 'adamw':
    # optax's adamw: p -= lr (adam + wd p), identical to torch.optim.AdamW's
    # p *= 1 - lr wd; p -= lr adam.
    return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=cfg.weight_decay)
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.sgd(schedule, momentum=cfg.momentum))


def kl_loss(student_logits, teacher_logits, temperature: float) -> jax.Array:
  """KL(softmax(t/T) ‖ softmax(s/T)) summed over [N, K], divided by N; no T² factor.

  PyTorch's ``KLDivLoss(reduction='batchmean')(log_softmax(s/T), softmax(t/T))`` as in
  SRe2L's ``relabel_cifar.py`` and UniDD's ``generate_soft_label_online.py``.
  """
  log_ps = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  log_pt = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
  return jnp.sum(jnp.exp(log_pt) * (log_pt - log_ps)) / student_logits.shape[0]


def edc_loss(student_logits, teacher_logits, hard_labels, ce_weight: float) -> jax.Array:
  """EDC's ``mse_gt``: mean over [N, K] of (s − t)² + ce_weight · mean CE(s, labels)."""
  mse = jnp.mean((student_logits - teacher_logits) ** 2)
  log_ps = jax.nn.log_softmax(student_logits, axis=-1)
  ce = -jnp.mean(jnp.take_along_axis(log_ps, hard_labels[:, None], axis=-1))
  return mse + ce_weight * ce


def relabel_loss(cfg: RelabelConfig, student_logits, teacher_logits, hard_labels):
  """The loss named by ``cfg.loss`` on one batch (scalar)."""
  if cfg.loss == 'kl':
    return kl_loss(student_logits, teacher_logits, cfg.temperature)
  return edc_loss(student_logits, teacher_logits, hard_labels, cfg.ce_weight)


# ----------------------------------------------------------------------------------
# Augmentation: crop, flip, batch mixing (``jaxdd.batch_augment``).
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
# Teachers.
# ----------------------------------------------------------------------------------


class _Ensemble(NamedTuple):
  """Hashable ``(variables, x) -> mean logits`` of fixed modules (a pytree-free aux).

  ``stacked[i]``: the variables of entry i carry a leading teacher axis [T_i, ...].
  """
  models: tuple
  stacked: tuple

  def __call__(self, variables, x):
    total, count = 0.0, 0
    for model, v, stacked in zip(self.models, variables, self.stacked):
      logits = lambda v, m=model: models_lib.apply_model(m, v, x, train=False)[0]
      if stacked:
        out = jax.vmap(logits)(v)                      # [T_i, N, K]
        total, count = total + jnp.sum(out, 0), count + out.shape[0]
      else:
        total, count = total + logits(v), count + 1
    return total / count


def make_teacher_fn(teachers) -> jax.tree_util.Partial:
  """``teacher_fn(x [N,H,W,C]) -> [N, K]``: the mean logits of teachers in eval mode.

  Args:
    teachers: one teacher or a list of them (EDC averages the logits of its 8
      backbones, METHODS.md §2 EDC). A teacher is a ``(model, variables)`` pair, or a
      set of same-architecture teachers with ``.model`` and ``.variables`` whose leaves
      have a leading teacher axis (``jaxdd.teachers.Teachers``); every network of a
      set counts once in the mean.

  Returns:
    A ``jax.tree_util.Partial`` whose leaves are the teachers' variables, so passing it
    to a jitted function makes them arguments rather than constants baked into the
    program.
  """
  is_set = lambda t: hasattr(t, 'model') and hasattr(t, 'variables')
  is_pair = lambda t: isinstance(t, tuple) and len(t) == 2 and not is_set(t) and not (
      isinstance(t[0], tuple) or is_set(t[0]))
  if is_set(teachers) or is_pair(teachers):
    teachers = [teachers]
  if not teachers or not all(is_set(t) or is_pair(t) for t in teachers):
    raise ConfigError('teachers must be a (model, variables) pair, a teacher set with '
                      '.model and .variables, or a non-empty list of those')
  models = tuple(t.model if is_set(t) else t[0] for t in teachers)
  variables = tuple(t.variables if is_set(t) else t[1] for t in teachers)
  stacked = tuple(is_set(t) for t in teachers)
  return jax.tree_util.Partial(_Ensemble(models, stacked), variables)


# ----------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------


def eval_epochs(cfg: RelabelConfig) -> np.ndarray:
  """0-based epochs after which a run with ``eval_fn`` scores the test set.

  'final': [E − 1]. 'best_last_20': E − 1 − j·eval_every for the n = max(1,
  ⌊⌈frac·E⌉ / eval_every⌋) values of j, ascending (UniDD, E = 1000: 809, 819, ..., 999).
  """
  e = cfg.epochs
  if cfg.readout == 'final':
    return np.array([e - 1])
  window = math.ceil(round(cfg.best_window_frac * e, 9))
  n = max(1, min(window, e) // cfg.eval_every)
  start = e - n * cfg.eval_every
  return start + cfg.eval_every * np.arange(1, n + 1) - 1


def make_relabel_train_fn(student_model, image_shape, num_images: int, cfg: RelabelConfig,
                          teacher_fn, eval_fn=None):
  """Builds ``train(key, images, hard_labels)`` for the relabel protocol.

  One step: batch ``perm[(i·B + arange(B)) mod N]`` of the epoch's permutation, augment
  (``augment_batch``), teacher logits on the augmented batch (no gradient), one optimizer
  step on ``relabel_loss`` with the student in train mode, then the weight EMA. Keys:
  ``init, data, aug = split(key, 3)``; epoch e permutes with ``fold_in(data, e)``, step
  s augments with ``fold_in(aug, s)``.

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
  batch = min(cfg.batch_size, num_images)
  spe = math.ceil(num_images / batch)
  tx = _optimizer(cfg, spe)
  decay = cfg.ema_decay
  use_ema = decay > 0

  def train(key, images, hard_labels):
    init_key, data_key, aug_key = jax.random.split(key, 3)
    variables = models_lib.init_model(student_model, init_key, image_shape)
    carry = (variables, tx.init(variables['params']),
             variables['params'] if use_ema else ())

    def step(carry, s):
      variables, opt_state, ema = carry
      epoch, within = jnp.divmod(s, spe)
      perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_images)
      idx = perm[(within * batch + jnp.arange(batch)) % num_images]
      x = augment_batch(jax.random.fold_in(aug_key, s), images[idx], cfg)
      teacher_logits = jax.lax.stop_gradient(teacher_fn(x))

      def loss_fn(params):
        logits, new_vars = models_lib.apply_model(
            student_model, {**variables, 'params': params}, x, train=True)
        return relabel_loss(cfg, logits, teacher_logits, hard_labels[idx]), new_vars

      (loss, new_vars), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          variables['params'])
      updates, opt_state = tx.update(grads, opt_state, variables['params'])
      params = optax.apply_updates(variables['params'], updates)
      if use_ema:
        ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
      return ({**new_vars, 'params': params}, opt_state, ema), loss

    def run(carry, first_step, num_steps):
      return jax.lax.scan(step, carry, first_step + jnp.arange(num_steps))

    def evaluated(carry, epoch):
      variables, _, ema = carry
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

  return evaluate.over_seeds(one_seed, keys, seed_loop)


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
    num_seeds: students trained in one compiled program (``evaluate.over_seeds``).
    cfg: the protocol's settings.
    seed_loop: 'auto', 'vmap' or 'map', see ``evaluate.over_seeds``.

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
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_seeds))
  scores, final_loss = _train_and_test(
      student_model, tuple(images.shape[1:]), cfg, seed_loop, keys, teacher_fn, images,
      jnp.asarray(labels, jnp.int32), jnp.asarray(x_test, jnp.float32),
      jnp.asarray(y_test, jnp.int32))
  scores = np.asarray(scores, np.float64)            # [seeds, evaluations]
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
