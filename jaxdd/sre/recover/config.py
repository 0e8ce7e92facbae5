"""Recover-stage settings: ``RecoverConfig``, the authors' defaults, checks, and the
per-run constants derived from a config (pixel clip bounds, CFM's β_k curriculum).

See ``jaxdd.sre.recover`` (the package docstring) for the stage itself.
"""

from typing import NamedTuple

import numpy as np

from jaxdd.errors import ConfigError, is_int, is_num
from jaxdd.sre.losses import spectral as sp
from jaxdd.sre.losses import edc

# The keys of ``jaxdd.sre.recover.METHODS`` (checked there), known here so that the checks
# do not import the methods.
METHOD_NAMES = ('sre2l', 'cfm', 'edc')
INITS = ('noise', 'real')
CURRICULA = ('cosine', 'fixed')


class RecoverConfig(NamedTuple):
  """Recover-stage settings. Field defaults are SRe2L's CIFAR values; use
  ``default_config(method)`` for each method's authors' CIFAR values (docs/methods.md).

  Attributes:
    method: 'sre2l', 'cfm' or 'edc' (a key of ``jaxdd.sre.recover.METHODS``).
    ipc: sequential batches = images per class.
    iterations: Adam steps per batch (SRe2L/CFM 1000, EDC 75).
    lr: Adam learning rate (SRe2L/CFM 0.25, EDC 0.05); betas, eps: Adam's.
    cosine: lr·(1 + cos(πt/T))/2 per batch (``lr_cosine_policy``, no warmup).
    init: 'noise' (N(0, 1) in the preprocessed space, SRe2L) or 'real' (CFM, EDC).
    jitter: roll by (u, v) ~ U{0..jitter}² pixels, one shift per step for the batch.
    crop_scale: RandomResizedCrop area range, or None for no crop (SRe2L CIFAR).
    crop_ratio: RandomResizedCrop aspect-ratio range.
    flip: horizontal flip with p 0.5, one draw per step for the batch.
    r_bn: weight of the statistic term (SRe2L ``--r-bn`` 0.01, EDC ``--r-loss`` 0.01).
    first_bn_multiplier: weight of the first tapped layer (10).
    cfm_eta: CFM's η, weight of the matching terms (0.1).
    cfm_beta: CFM's β (0.1); curriculum 'cosine': β_k = β(1 + cos(πk/IPC))/2, 'fixed': β.
    kind: CFM filter, 'hfm' ((Σ + βI)⁻¹) or 'lfm' (Σ).
    cfm_signal: 'mean' (μ, ``hook.py`` default, docs/methods.md) or 'class' (Φ, paper Eq. 18).
    ema: CFM's EMU: the synthetic statistics are the mean over finished batches and
      the current one (Eq. 19, ``--ema``).
    edc_alpha: weight of EDC's global term (0.5); edc_form: 'paper' or 'code'
      (see ``edc_losses.edc_match_loss``).
    smoothing_momentum: EDC/G-VBSM statistic smoothing (0.8).
    patch_stats: EDC's 4×4-patch mean/var at conv inputs.
    flatness, flatness_tau, flatness_weight, flatness_direction, ema_alpha: EDC's
      flatness regulariser (off in the CIFAR-10 script), KL at τ 4, weight 1, image
      EMA α 0.99.
    clip: clip pixels after every step to ``pixel_range`` in data space, mapped to the
      preprocessed space by ``norm_mean`` / ``norm_std`` (per channel) when given. The
      authors' data are normalised: pass the data set's mean/std (without them the
      bounds are the raw [0, 1], which would clip half of an N(0, 1) noise init).
    stats_batch_size: images per forward in ``prepare_targets``.
  """
  method: str = 'sre2l'
  ipc: int = 1
  iterations: int = 1000
  lr: float = 0.25
  betas: tuple = (0.5, 0.9)
  eps: float = 1e-8
  cosine: bool = True
  init: str = 'noise'
  jitter: int = 4
  crop_scale: tuple | None = None
  crop_ratio: tuple = (3 / 4, 4 / 3)
  flip: bool = False
  r_bn: float = 0.01
  first_bn_multiplier: float = 10.0
  cfm_eta: float = 0.1
  cfm_beta: float = 0.1
  curriculum: str = 'cosine'
  kind: str = 'hfm'
  cfm_signal: str = 'mean'
  ema: bool = True
  edc_alpha: float = 0.5
  edc_form: str = 'paper'
  smoothing_momentum: float = 0.8
  patch_stats: bool = True
  flatness: bool = False
  flatness_tau: float = 4.0
  flatness_weight: float = 1.0
  flatness_direction: str = 'paper'
  ema_alpha: float = 0.99
  clip: bool = True
  pixel_range: tuple = (0.0, 1.0)
  norm_mean: tuple | None = None
  norm_std: tuple | None = None
  stats_batch_size: int = 256


_AUTHOR_DEFAULTS = {
    # VILA-Lab/SRe2L small_dataset/recover_cifar.{py,sh}: roll only, noise init.
    'sre2l': dict(iterations=1000, lr=0.25, init='noise', jitter=4, crop_scale=None,
                  flip=False, r_bn=0.01),
    # bdy9527/UniDD synthesis_small.py with --ema --cos --filter HFM --beta 0.1.
    'cfm': dict(iterations=1000, lr=0.25, init='real', jitter=4, crop_scale=(0.08, 1.0),
                flip=True, curriculum='cosine', ema=True),
    # shaoshitong/EDC Branch_CIFAR_10/recover/recover.sh: paired RRC + flip, no roll.
    'edc': dict(iterations=75, lr=0.05, init='real', jitter=0, crop_scale=(0.08, 1.0),
                flip=True, r_bn=0.01, flatness=False),
}


def default_config(method: str, **overrides) -> RecoverConfig:
  """The authors' CIFAR settings of ``method`` (docs/methods.md), with ``overrides``."""
  _check('method', method, METHOD_NAMES)
  return RecoverConfig(method=method, **{**_AUTHOR_DEFAULTS[method], **overrides})


def _check(field, value, accepted):
  if value not in accepted:
    raise ConfigError(f'{field}={value!r} is not supported; accepted: '
                      f'{", ".join(map(repr, accepted))}')


def _require(ok, field, value, accepted):
  if not ok:
    raise ConfigError(f'{field}={value!r} is not supported; accepted: {accepted}')


def _pair(v):
  return isinstance(v, (tuple, list)) and len(v) == 2 and all(
      is_num(a) for a in v)


def check_recover_config(cfg: RecoverConfig) -> None:
  """Raises ConfigError naming the first bad field of ``cfg`` and what is accepted."""
  _check('method', cfg.method, METHOD_NAMES)
  _check('init', cfg.init, INITS)
  _check('curriculum', cfg.curriculum, CURRICULA)
  _check('kind', cfg.kind, sp.CFM_FILTERS)
  _check('cfm_signal', cfg.cfm_signal, sp.CFM_SIGNALS)
  _check('edc_form', cfg.edc_form, edc.EDC_FORMS)
  _check('flatness_direction', cfg.flatness_direction, edc.KL_DIRECTIONS)
  for field in ('ipc', 'iterations', 'stats_batch_size'):
    v = getattr(cfg, field)
    _require(is_int(v) and v >= 1, field, v, 'int >= 1')
  _require(is_int(cfg.jitter) and cfg.jitter >= 0, 'jitter', cfg.jitter, 'int >= 0')
  for field in ('lr', 'eps', 'flatness_tau'):
    v = getattr(cfg, field)
    _require(is_num(v) and v > 0, field, v, 'a number > 0')
  for field in ('r_bn', 'first_bn_multiplier', 'cfm_eta', 'cfm_beta', 'flatness_weight'):
    v = getattr(cfg, field)
    _require(is_num(v) and v >= 0, field, v, 'a number >= 0')
  for field in ('smoothing_momentum', 'ema_alpha', 'edc_alpha'):
    v = getattr(cfg, field)
    _require(is_num(v) and 0 <= v <= 1, field, v, 'a number in [0, 1]')
  _require(_pair(cfg.betas) and all(0 <= b < 1 for b in cfg.betas), 'betas', cfg.betas,
           'two numbers in [0, 1)')
  scale = cfg.crop_scale
  _require(scale is None or (_pair(scale) and 0 < scale[0] <= scale[1] <= 1),
           'crop_scale', scale, 'None or (lo, hi) with 0 < lo <= hi <= 1')
  _require(_pair(cfg.crop_ratio) and 0 < cfg.crop_ratio[0] <= cfg.crop_ratio[1],
           'crop_ratio', cfg.crop_ratio, '(lo, hi) with 0 < lo <= hi')
  _require(_pair(cfg.pixel_range) and cfg.pixel_range[0] < cfg.pixel_range[1],
           'pixel_range', cfg.pixel_range, '(lo, hi) with lo < hi')
  if (cfg.norm_mean is None) != (cfg.norm_std is None):
    raise ConfigError('norm_mean and norm_std must be given together (or both None)')
  if cfg.norm_std is not None:
    _require(len(cfg.norm_mean) == len(cfg.norm_std) and min(cfg.norm_std) > 0,
             'norm_std', cfg.norm_std, 'per-channel stds > 0, as long as norm_mean')


def clip_bounds(cfg: RecoverConfig):
  """(lo, hi) pixel bounds in the preprocessed space: ``(pixel_range − mean) / std``
  per channel (SRe2L ``clip_cifar``: [−m/s, (1 − m)/s]), floats or [C] arrays."""
  lo, hi = cfg.pixel_range
  if cfg.norm_mean is None:
    return lo, hi
  m, s = np.asarray(cfg.norm_mean, np.float32), np.asarray(cfg.norm_std, np.float32)
  return (lo - m) / s, (hi - m) / s


def batch_betas(cfg: RecoverConfig) -> np.ndarray:
  """β_k of every sequential batch, [ipc] (UniDD Eq. 16 via ``spectral.cfm_beta``)."""
  return np.array([float(sp.cfm_beta(k, cfg.ipc, cfg.cfm_beta,
                                     cosine=cfg.curriculum == 'cosine'))
                   for k in range(cfg.ipc)], np.float32)


__all__ = ['METHOD_NAMES', 'INITS', 'CURRICULA', 'RecoverConfig', 'default_config',
           'check_recover_config', 'clip_bounds', 'batch_betas']
