"""The recover methods SRe2L, UniDD/CFM and EDC as ``RecoverMethod`` entries of
``METHODS``, and the batch-shared augmentation their losses apply.

Each method is four pure functions (prepare the teacher statistics once, the initial
cross-batch state, the loss of one step, the end-of-batch update); the loop of
``jaxdd.sre.recover.loop`` calls them without branching on the method. The loss pieces are
``jaxdd.sre.losses.statistics`` and ``jaxdd.sre.losses.spectral``.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdd.augment import dsa as dsa_ops
from jaxdd.augment import batch as ba
from jaxdd.models.utils import apply_model
from jaxdd.sre.losses import spectral as sp
from jaxdd.sre.losses import edc
from jaxdd.sre.losses import statistics as st
from jaxdd.sre.recover.config import METHOD_NAMES
from jaxdd.sre.recover.config import RecoverConfig


# ---------------------------------------------------------------------------------
# Augmentation: torchvision RandomResizedCrop + RandomHorizontalFlip on a batch tensor
# (one draw for the whole batch), then torch.roll jitter.
# ---------------------------------------------------------------------------------
def augment_params(key, cfg: RecoverConfig, height: int, width: int) -> dict:
  """Draws one set of batch-shared augmentation parameters (scalars, jit-able).

  The crop is ``batch_augment.rrc_boxes`` with one box for the batch (torchvision's
  ``RandomResizedCrop.get_params``: 10 tries of area ~ U(scale)·H·W and log-ratio ~
  U(log ratio), the first that fits, else the central crop clamped to the ratio
  range, i.e. the whole image for a square image whose ratio range holds 1); no crop
  (the whole image) when ``cfg.crop_scale`` is None.

  Returns:
    {'top', 'left', 'height', 'width', 'flip', 'shift_h', 'shift_w'} int32 / bool.
  """
  k_crop, k_flip, k_roll = jax.random.split(key, 3)
  if cfg.crop_scale is not None:
    top, left, ch, cw = ba.rrc_boxes(k_crop, None, height, width, cfg.crop_scale,
                                     cfg.crop_ratio)
  else:
    top = left = jnp.int32(0)
    ch, cw = jnp.int32(height), jnp.int32(width)
  flip = jax.random.bernoulli(k_flip) if cfg.flip else jnp.bool_(False)
  shifts = jax.random.randint(k_roll, (2,), 0, cfg.jitter + 1)
  return dict(top=top, left=left, height=ch, width=cw, flip=flip,
              shift_h=shifts[0], shift_w=shifts[1])


def apply_augment(x, params: dict):
  """Resized crop → flip → roll of a batch [N, H, W, C] with ``augment_params``.

  Differentiable in ``x`` (the crop is two interpolation matmuls,
  ``batch_augment.resized_crop``; roll is circular, as ``torch.roll``: a positive
  shift moves the content to higher indices).
  """
  x = ba.resized_crop(x, params['top'], params['left'], params['height'],
                      params['width'])
  x = dsa_ops.flip_width(x, params['flip'])
  return jnp.roll(x, jnp.stack([params['shift_h'], params['shift_w']]), axis=(1, 2))


def augment(key, x, cfg: RecoverConfig):
  """``apply_augment(x, augment_params(key, ...))``; identity when nothing is on."""
  if cfg.crop_scale is None and not cfg.flip and cfg.jitter == 0:
    return x
  return apply_augment(x, augment_params(key, cfg, x.shape[1], x.shape[2]))


# ---------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------
class StepInfo(NamedTuple):
  """Traced per-step values: batch index k (0-based), iteration t, CFM's β_k."""
  batch: Any
  iteration: Any
  beta: Any


class RecoverMethod(NamedTuple):
  """One recover method as pure functions (the loop never branches on the method).

  prepare(cfg, model, variables, x, y, num_classes) -> targets: teacher statistics,
    once, outside jit (a pytree of arrays).
  init_state(cfg, targets) -> teacher_state: what crosses iterations and batches for
    one teacher (EMU running statistics, EDC smoothing EMAs).
  loss(cfg, images, labels, teacher, targets, (teacher_state, shared), info, key)
    -> (loss, ((teacher_state, shared), metrics)). ``shared`` = {'ema_images'} (the
    image EMA of EDC's flatness, reset to the initial images of each batch); metrics a
    dict of scalars. Augments with ``key`` itself (EDC pairs the EMA images).
  end_batch(cfg, teacher_state, batch_index) -> teacher_state: after each batch.
  """
  prepare: Callable
  init_state: Callable
  loss: Callable
  end_batch: Callable = lambda cfg, state, k: state


def _ce(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _taps(model, variables, x, kinds, skip):
  logits, taps = st.layer_inputs(model, variables, x, kinds=kinds, skip=skip)
  return logits, [taps[k] for k in sorted(taps)]


def _f32(tree):
  return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tree)


# SRe2L: CE + r_bn Σ_l w_l (‖μ_l − μ̂_l‖ + ‖σ²_l − σ̂²_l‖) at every BN input (Eq. 4).
def _sre2l_prepare(cfg, model, variables, x, y, num_classes):
  _, taps = st.layer_inputs(model, variables, jnp.zeros((1,) + tuple(x.shape[1:])),
                            kinds=('batchnorm',), skip=())
  return _f32(st.bn_running_stats(variables, taps))


def _sre2l_loss(cfg, images, labels, teacher, targets, state, info, key):
  model, variables = teacher
  logits, feats = _taps(model, variables, augment(key, images, cfg), ('batchnorm',), ())
  loss, m = st.sre2l_loss(logits, labels, feats, targets, r_bn=cfg.r_bn,
                          first_multiplier=cfg.first_bn_multiplier)
  return loss, (state, {'ce': m['ce'], 'match': m['bn']})


# CFM: CE + η Σ_l ‖F_t − F_s‖_F + ‖F_t s_t − F_s s_s‖ at non-downsample conv inputs.
def _cfm_prepare(cfg, model, variables, x, y, num_classes):
  stats = st.accumulate_statistics(
      lambda xb: st.layer_inputs(model, variables, xb, kinds=('conv',))[1],
      x, y, num_classes, cfg.stats_batch_size, cov=True)
  sig = 'mean' if cfg.cfm_signal == 'mean' else 'flc'
  return _f32([(stats[k]['cov'], stats[k][sig]) for k in sorted(stats)])


def _cfm_init_state(cfg, targets):
  zeros = jax.tree_util.tree_map(jnp.zeros_like, targets)
  return {'running': zeros, 'last': zeros}


def _cfm_loss(cfg, images, labels, teacher, targets, state, info, key):
  model, variables = teacher
  tstate, shared = state
  logits, feats = _taps(model, variables, augment(key, images, cfg), ('conv',),
                        ('shortcut',))
  onehot = jax.nn.one_hot(labels, logits.shape[-1])
  cur = [sp.cfm_batch_stats(f, onehot, cfg.cfm_signal) for f in feats]
  # EMU (Eq. 19): the plain mean over the k finished-and-current batches.
  syn = sp.emu_update(tstate['running'], cur, info.batch + 1) if cfg.ema else cur
  loss, m = sp.cfm_loss(logits, labels, syn, targets, info.beta, eta=cfg.cfm_eta,
                        kind=cfg.kind)
  # hook.py stores the statistics of the batch's last forward (before the last step).
  tstate = {**tstate, 'last': jax.lax.stop_gradient(cur)}
  return loss, ((tstate, shared), {'ce': m['ce'], 'match': m['match']})


def _cfm_end_batch(cfg, tstate, k):
  if not cfg.ema:
    return tstate
  return {**tstate, 'running': sp.emu_update(tstate['running'], tstate['last'], k + 1)}


# EDC: CE + r Σ_l w_l [α global + (1 − α) category] on smoothed statistics of every
# conv and BN input (+ 4×4 patch statistics at conv inputs) + flatness KL.
def patch_view(feat, size: int = 4):
  """EDC's patch layout: [N, H, W, C] -> [N, size²·C, (H/size)·(W/size)], so that the
  statistics of the last axis over the other two are EDC's per-patch mean/var over
  (batch, channel, in-patch pixels). Maps whose side is not a multiple of ``size``
  are first resized (bilinear, half-pixel) up to the next multiple (``div_four_mul``)."""
  n, h, w, c = feat.shape
  nh, nw = -(-h // size) * size, -(-w // size) * size
  if (nh, nw) != (h, w):
    feat = jax.image.resize(feat, (n, nh, nw, c), 'linear', antialias=False)
  f = feat.reshape(n, nh // size, size, nw // size, size, c)
  return f.transpose(0, 2, 4, 5, 1, 3).reshape(n, size * size * c, -1)


def _is_bn_tap(variables, key):
  node = variables.get('batch_stats', {})
  for name in key.split(':', 1)[1].split('/'):
    if not isinstance(node, dict) or name not in node:
      return False
    node = node[name]
  return 'mean' in node


def _edc_feature_sets(feat, is_conv: bool, cfg):
  sets = {'chan': feat}
  if is_conv and cfg.patch_stats:
    sets['patch'] = patch_view(feat)
  return sets


def _edc_prepare(cfg, model, variables, x, y, num_classes):
  kinds = ('conv', 'batchnorm')
  _, probe = st.layer_inputs(model, variables, jnp.asarray(x[:1]), kinds=kinds, skip=())
  is_bn = {k: _is_bn_tap(variables, k) for k in probe}

  def feature_fn(xb):
    _, taps = st.layer_inputs(model, variables, xb, kinds=kinds, skip=())
    return {f'{k}|{name}': f for k in taps
            for name, f in _edc_feature_sets(taps[k], not is_bn[k], cfg).items()}

  stats = st.accumulate_statistics(feature_fn, x, y, num_classes, cfg.stats_batch_size,
                                   cov=False)
  class_var = 'class_var_within' if cfg.edc_form == 'code' else 'class_var'
  running = dict(zip(sorted(k for k in probe if is_bn[k]),
                     st.bn_running_stats(variables, {k: 0 for k in probe if is_bn[k]})))
  targets = []
  for k in sorted(probe):
    layer = {}
    for name in _edc_feature_sets(probe[k], not is_bn[k], cfg):
      s = stats[f'{k}|{name}']
      # BN layers match the teacher's running statistics (EDC uses module.running_*).
      glob = ({'mean': running[k][0], 'var': running[k][1]} if is_bn[k]
              else {'mean': s['mean'], 'var': s['var']})
      layer[name] = {'global': glob,
                     'class': {'mean': s['class_mean'], 'var': s[class_var]}}
    targets.append(layer)
  return _f32(targets)


def _edc_init_state(cfg, targets):
  keep = ('global', 'class') if cfg.edc_form == 'paper' else ('global',)
  ema = [{name: {part: jax.tree_util.tree_map(jnp.zeros_like, t[part]) for part in keep}
          for name, t in layer.items()} for layer in targets]
  return {'ema': ema, 'count': jnp.int32(0)}


def _edc_loss(cfg, images, labels, teacher, targets, state, info, key):
  model, variables = teacher
  tstate, shared = state
  num_classes = targets[0]['chan']['class']['mean'].shape[0]
  x_aug = augment(key, images, cfg)
  logits, feats = _taps(model, variables, x_aug, ('conv', 'batchnorm'), ())
  match, new_ema = 0.0, []
  for i, (feat, tgt, ema) in enumerate(zip(feats, targets, tstate['ema'])):
    layer, layer_ema = 0.0, {}
    sets = _edc_feature_sets(feat, 'patch' in tgt, cfg)
    for name in sorted(tgt):
      mean, var = st.batch_moments(sets[name])
      syn = {'global': {'mean': mean, 'var': var}}
      if cfg.edc_form == 'paper':
        syn['class'] = edc.class_moments(sets[name], labels, num_classes)
      smoothed, layer_ema[name] = edc.smooth_statistic(ema[name], syn, tstate['count'],
                                                      cfg.smoothing_momentum)
      layer = layer + edc.edc_match_loss(
          smoothed['global'], tgt[name]['global'], tgt[name]['class'], labels,
          alpha=cfg.edc_alpha, form=cfg.edc_form, syn_class_stats=smoothed.get('class'))
    match = match + (cfg.first_bn_multiplier if i == 0 else 1.0) * layer
    new_ema.append(layer_ema)
  ce = _ce(logits, labels)
  loss = ce + cfg.r_bn * match
  flat = jnp.float32(0.0)
  if cfg.flatness:
    # Same augmentation for the EMA images (EDC's ApplyTransformToPair).
    ema_logits, _ = apply_model(model, variables, augment(key, shared['ema_images'], cfg))
    flat = edc.flatness_kl(logits, ema_logits, tau=cfg.flatness_tau,
                          direction=cfg.flatness_direction)
    loss = loss + cfg.flatness_weight * flat
    shared = {**shared, 'ema_images': edc.ema_images(shared['ema_images'], images,
                                                    cfg.ema_alpha)}
  tstate = {'ema': new_ema, 'count': tstate['count'] + 1}
  return loss, ((tstate, shared), {'ce': ce, 'match': match, 'flat': flat})


METHODS = {
    'sre2l': RecoverMethod(_sre2l_prepare, lambda cfg, t: {}, _sre2l_loss),
    'cfm': RecoverMethod(_cfm_prepare, _cfm_init_state, _cfm_loss, _cfm_end_batch),
    'edc': RecoverMethod(_edc_prepare, _edc_init_state, _edc_loss),
}


assert tuple(METHODS) == METHOD_NAMES, 'recover.config.METHOD_NAMES is out of date'


__all__ = ['StepInfo', 'RecoverMethod', 'METHODS', 'augment_params', 'apply_augment',
           'augment', 'patch_view']
