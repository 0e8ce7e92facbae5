"""EDC's recover losses (Shao et al., "Elucidating the Design Space of Dataset
Condensation", NeurIPS 2024; docs/methods.md §2 EDC), as pure functions.

* ``edc_match_loss``: soft category-aware matching of global and class-conditional
  statistics; ``class_moments`` computes the latter on a synthetic batch.
* ``smooth_statistic``: the running average of a batch statistic with the current
  batch's gradient.
* ``flatness_kl`` and ``ema_images``: flatness regularisation against an EMA of the
  synthetic images.
* ``concat_crops``: real-image initialisation from a grid of crops.

Teacher statistics and SRe2L's loss are in ``jaxdd.sre.losses.statistics``.
"""

import math

import jax
import jax.numpy as jnp

from jaxdd.errors import ConfigError
from jaxdd.sre.losses.statistics import check_choice, safe_norm

EDC_FORMS = ('paper', 'code')
KL_DIRECTIONS = ('paper', 'code')


def smooth_statistic(ema, stat, step, momentum: float = 0.8):
  """G-VBSM/EDC statistic smoothing: s̃ = EMA + s − stop_grad(s).

  The value of s̃ is the running average (including the current batch), its
  gradient is the current batch's (EDC ``utils.py``: ``self.dd_var + var −
  var.detach()`` with ``dd_var ← m·dd_var + (1 − m)·var`` under no_grad, first value
  = var). ``step`` counts previous updates of this EMA; in EDC the EMA of a layer is
  never reset, so it carries over across the synthesised batches and teachers.

  Args:
    ema: pytree of the previous EMA (any value when step == 0).
    stat: pytree of the current batch statistic (same structure).
    step: int (traced is fine): 0 means no history yet.
    momentum: weight of the history (EDC ``training_momentum`` 0.8).

  Returns:
    (smoothed, new_ema): smoothed has stat's gradient and new_ema's value.
  """
  def one(e, s):
    sg = jax.lax.stop_gradient(s)
    new = jnp.where(step == 0, sg, momentum * e + (1 - momentum) * sg)
    return new + s - sg, new
  pairs = jax.tree_util.tree_map(one, ema, stat)
  treedef = jax.tree_util.tree_structure(stat)
  leaves = treedef.flatten_up_to(pairs)
  return (treedef.unflatten([p[0] for p in leaves]),
          treedef.unflatten([p[1] for p in leaves]))


def edc_match_loss(syn_stats, teacher_global, teacher_class, labels, *,
                   alpha: float = 0.5, form: str = 'paper', syn_class_stats=None):
  """EDC's soft category-aware statistic matching for one layer.

  L = α Σ_s ‖s_T − s_S‖₂ + (1 − α) · (category term), over the statistics
  s ∈ {mean, var} (EDC paper, "Soft Category-aware Matching"; α = 0.5 is the best
  row of its Table 5):

  * form='paper' (Form (2)): Σ_c p(c) Σ_s ‖s_T|c − s_S|c‖₂ over the classes c in the
    batch, p(c) their frequency in the batch, s_S|c the statistic of the synthetic
    images of class c (``syn_class_stats``).
  * form='code' (EDC ``utils.py`` post_hook_fn, category_aware='global'): the batch's
    global statistic against the teacher's class statistics averaged over the batch
    labels, Σ_s ‖mean_i s_T|y_i − s_S‖₂.

  Args:
    syn_stats: {'mean' [C], 'var' [C]}: synthetic batch statistics (smoothed or not).
    teacher_global: {'mean', 'var'} [C] (BN layers: the running statistics).
    teacher_class: {'mean', 'var'} [K, C].
    labels: [N] integer labels of the synthetic batch.
    alpha: weight of the global term.
    form: 'paper' or 'code'.
    syn_class_stats: {'mean', 'var'} [K, C] per-class synthetic statistics (needed by
      form='paper'; rows of absent classes are ignored).

  Returns:
    scalar loss.
  """
  check_choice('form', form, EDC_FORMS)
  keys = ('mean', 'var')
  glob = sum(safe_norm(teacher_global[k] - syn_stats[k]) for k in keys)
  num_classes = teacher_class['mean'].shape[0]
  freq = jnp.bincount(labels, length=num_classes) / labels.shape[0]     # p(c)
  if form == 'code':
    cat = sum(safe_norm(freq @ teacher_class[k] - syn_stats[k]) for k in keys)
  else:
    if syn_class_stats is None:
      raise ConfigError("edc_match_loss(form='paper') needs syn_class_stats")
    per_class = sum(safe_norm(teacher_class[k] - syn_class_stats[k], axis=-1)
                    for k in keys)
    cat = jnp.sum(freq * per_class)
  return alpha * glob + (1 - alpha) * cat


def class_moments(feat: jax.Array, labels: jax.Array, num_classes: int):
  """Per-class channel mean and population variance over the positions of each class's
  images: ({'mean': [K, C], 'var': [K, C]}); absent classes get zeros."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=feat.dtype)        # [N, K]
  f = feat.reshape(feat.shape[0], -1, feat.shape[-1])                  # [N, P, C]
  counts = onehot.sum(0) * f.shape[1]
  safe = jnp.maximum(counts, 1)[:, None]
  mean = jnp.einsum('nk,npc->kc', onehot, f) / safe
  sq = jnp.einsum('nk,npc->kc', onehot, jnp.square(f - (onehot @ mean)[:, None]))
  return {'mean': mean, 'var': sq / safe}


def ema_images(ema, images, alpha: float = 0.99):
  """EDC's image EMA for flatness: α·ema + (1 − α)·images (``--ema_alpha`` 0.99).

  In EDC the EMA images are used (teacher outputs) *before* this update each step.
  """
  return alpha * ema + (1 - alpha) * jax.lax.stop_gradient(images)


def flatness_kl(logits, ema_logits, *, tau: float = 4.0, direction: str = 'paper'):
  """EDC's flatness regulariser L'_FR between teacher outputs on the images and on
  their EMA (the EMA side is a constant).

  direction='paper': KL(softmax(φ(X)/τ) ‖ softmax(φ(X_EMA)/τ)), summed over classes,
    mean over the batch (EDC paper, "Flatness Regularization"; τ = 4 as its Table 4).
  direction='code': ``F.kl_div(log_softmax(φ(X)/4), softmax(φ(X_EMA)/4))``, i.e.
    KL(softmax(φ(X_EMA)/τ) ‖ softmax(φ(X)/τ)) with PyTorch's default 'mean'
    reduction: divided by N·K, not N.

  Args:
    logits: [N, K] teacher logits on the (augmented) synthetic images.
    ema_logits: [N, K] on the identically augmented EMA images.
  """
  check_choice('direction', direction, KL_DIRECTIONS)
  log_p = jax.nn.log_softmax(logits / tau)
  log_q = jax.lax.stop_gradient(jax.nn.log_softmax(ema_logits / tau))
  if direction == 'paper':
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), -1).mean()
  return jnp.mean(jnp.exp(log_q) * (log_q - log_p))


def concat_crops(crops: jax.Array) -> jax.Array:
  """EDC's real-image initialisation (paper Eq. 3): N real crops of a class, each
  resized to (H/√N, W/√N), tiled row-major on a √N × √N grid into one image.

  N = 1 is SRe2L/CDA's single real image, N = 4 RDED's 2 × 2 mosaic. The resize is
  bilinear without antialiasing (``F.interpolate(mode='bilinear')``; for N = 4 it is
  the mean of each 2 × 2 block). Selecting the crops (RDED scores random crops with
  the teacher) is the caller's.

  Args:
    crops: [B, N, H, W, C] with N a perfect square, H and W divisible by √N.

  Returns:
    [B, H, W, C].

  Raises:
    ConfigError: N is not a perfect square or does not divide the image.
  """
  b, n, h, w, c = crops.shape
  g = math.isqrt(n)
  if g * g != n or h % g or w % g:
    raise ConfigError(f'crops per image N={n} is not supported for {h}x{w} images; '
                      'accepted: a perfect square (1, 4, ...) whose root divides H and W')
  if g == 1:
    return crops[:, 0]
  small = jax.image.resize(crops, (b, n, h // g, w // g, c), 'linear', antialias=False)
  grid = small.reshape(b, g, g, h // g, w // g, c)
  return grid.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
