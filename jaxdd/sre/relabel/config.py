"""Settings of the relabel protocol: ``RelabelConfig``, the authors' ``PRESETS``, the
config check, the per-epoch learning-rate factor and the epochs that are evaluated.

The schedules and read-outs are described in the ``jaxdd.sre.relabel`` package docstring.
"""

import math
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxdd.errors import ConfigError, is_int, is_num
from jaxdd.train import optim

OPTIMIZERS = ('adamw', 'sgd')
SCHEDULES = ('cosine', 'quarter_cosine', 'smoothed', 'multistep')
LOSSES = ('kl', 'edc')
CROPS = ('rrc', 'pad', 'none')
MIXES = ('none', 'cutmix', 'mixup')
READOUTS = ('final', 'best_last_20')


class RelabelConfig(NamedTuple):
  """Settings of the relabel protocol (defaults: SRe2L's CIFAR relabel, docs/methods.md §1).

  Attributes:
    epochs: passes over the distilled set (SRe2L 400, UniDD/EDC CIFAR 1000).
    batch_size: minibatch size (capped at the set size).
    optimizer: 'adamw' (β 0.9/0.999, eps 1e-8, decoupled decay) or 'sgd' (momentum,
      PyTorch-style coupled decay).
    lr: peak learning rate (1e-3 for AdamW in all three papers).
    weight_decay: 0.01 (SRe2L, UniDD, EDC).
    momentum: SGD momentum ('sgd' only).
    schedule: per-epoch lr factor, see the package docstring.
    slowdown: ζ of 'smoothed'.
    milestones: epochs of 'multistep' at which the lr is multiplied by ``gamma``.
    gamma: factor of 'multistep'.
    loss: 'kl' or 'edc', see the package docstring.
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
# Learning-rate schedule, evaluated epochs.
# ----------------------------------------------------------------------------------


def epoch_factor(cfg: RelabelConfig, epoch) -> jax.Array:
  """The lr multiplier of (0-based) ``epoch``, see the package docstring; any shape:
  ``train.optim.multistep_factor``, or ``train.optim.cosine_factor`` with period E
  ('cosine'), 2E ('quarter_cosine') or ζE ('smoothed')."""
  if cfg.schedule == 'multistep':
    return optim.multistep_factor(epoch, cfg.milestones, cfg.gamma)
  stretch = {'cosine': 1.0, 'quarter_cosine': 2.0, 'smoothed': cfg.slowdown}[cfg.schedule]
  return optim.cosine_factor(epoch, stretch * cfg.epochs)


def lr_schedule(cfg: RelabelConfig, steps_per_epoch: int) -> Callable[[Any], jax.Array]:
  """``step -> lr``: constant within an epoch, ``lr * epoch_factor(step // spe)``
  (``train.optim.per_epoch``)."""
  return optim.per_epoch(cfg.lr, steps_per_epoch, lambda e: epoch_factor(cfg, e))



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
