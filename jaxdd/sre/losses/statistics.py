"""Teacher statistics and the statistic-matching losses of SRe2L and EDC.

The squeeze-recover-relabel family (SRe2L, UniDD/CFM, EDC; docs/methods.md §1 "SRe2L", §2
"UniDD", "EDC") synthesises images against a *pretrained* teacher: the per-channel
statistics of the teacher's layer inputs on the synthetic batch must match those of the
whole training set. This module has the pieces, as pure functions:

* ``layer_inputs``: the input of every conv and/or batch-norm layer of a jaxdd model
  (the authors' PyTorch forward hooks read ``input[0]``), via Flax method interception.
* ``accumulate_statistics``: streaming per-layer statistics over the full training set,
  globally and per class (mean, population variance, channel covariance, CFM's
  feature-label correlation), merged with Chan et al.'s pairwise update in float64 on
  the host.
* SRe2L's recover loss (``sre2l_loss``). EDC's soft category-aware matching,
  statistic smoothing, flatness regularisation and real-image initialisation are in
  ``jaxdd.sre.losses.edc``.

CFM's filters live in ``jaxdd.sre.losses.spectral`` with the rest of UniDD.
Feature maps are NHWC: [N, H, W, C]; statistics are over the N·H·W positions.
"""

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdd.errors import ConfigError
from jaxdd.models import layers

TAP_KINDS = ('conv', 'batchnorm')


def check_choice(field, value, accepted):
  """Raises ConfigError naming ``field`` and the accepted values if ``value`` is not one."""
  if value not in accepted:
    raise ConfigError(f'{field}={value!r} is not supported; accepted: '
                      f'{", ".join(map(repr, accepted))}')


def safe_norm(x: jax.Array, axis=None) -> jax.Array:
  """Euclidean / Frobenius norm whose gradient at 0 is 0 (PyTorch's ``torch.norm``
  backward), not the NaN of sqrt at 0: matched statistics must not poison the step."""
  sq = jnp.sum(jnp.square(x), axis=axis)
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


# ---------------------------------------------------------------------------------
# Layer inputs
# ---------------------------------------------------------------------------------
def layer_inputs(module: nn.Module, variables: Mapping, x: jax.Array, *,
                 kinds: Sequence[str] = ('conv',), train: bool = False,
                 skip: Sequence[str] = ('shortcut',)):
  """Runs the model and returns the input of every conv / batch-norm layer.

  UniDD taps the input of every non-downsample Conv2d (``hook.py``, ``feat='input'``),
  SRe2L/EDC the input of every BatchNorm2d (and EDC also of every conv). jaxdd's
  ``features=True`` only returns block outputs, so this intercepts ``__call__`` of
  ``layers.Conv`` / ``layers.Norm('batchnorm')`` and records its first argument. The
  record list is local to one call, so the function is pure and jit-able (jaxdd's
  models use no lifted transforms, under which a recorded tracer would escape).

  Args:
    module: a model from ``jaxdd.models.get_model``.
    variables: its variables ({'params'[, 'batch_stats']}).
    x: [N, H, W, C] images.
    kinds: any of 'conv', 'batchnorm'.
    train: forwarded to the model; the teachers of SRe2L/CFM/EDC run in eval mode.
      With ``train`` the updated running statistics are discarded.
    skip: layers whose path contains one of these names are left out (ResNet's
      projection shortcut = torchvision's 'downsample', which UniDD skips; SRe2L and
      EDC hook every BN / conv, shortcut included: pass ``skip=()``).

  Returns:
    (logits, taps): taps is a dict ``'{i:03d}:{path}' -> [N, H, W, C]`` whose sorted
    key order is the call order (shallow to deep), e.g. '000:block_0/conv'.
  """
  for kind in kinds:
    check_choice('kinds', kind, TAP_KINDS)
  record = []

  def interceptor(next_fun, args, kwargs, context):
    mod = context.module
    if context.method_name == '__call__' and not any(s in mod.path for s in skip):
      is_conv = isinstance(mod, layers.Conv) and 'conv' in kinds
      is_bn = (isinstance(mod, layers.Norm) and mod.kind == 'batchnorm'
               and 'batchnorm' in kinds)
      if is_conv or is_bn:
        record.append(('/'.join(mod.path), args[0]))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    if train and variables.get('batch_stats'):
      logits, _ = module.apply(variables, x, train=True, mutable=['batch_stats'])
    else:
      logits = module.apply(variables, x, train=train)
  return logits, {f'{i:03d}:{p}': a for i, (p, a) in enumerate(record)}


def bn_running_stats(variables: Mapping, taps: Mapping) -> list[tuple]:
  """The (running mean [C], running var [C]) of the batch norm behind each tap.

  Args:
    variables: the teacher's variables with 'batch_stats'.
    taps: keys from ``layer_inputs(kinds=('batchnorm',))``.

  Returns:
    A list in sorted-key order. jaxdd's running variance is PyTorch's (unbiased).
  """
  out = []
  for key in sorted(taps):
    node = variables['batch_stats']
    for name in key.split(':', 1)[1].split('/'):
      node = node[name]
    out.append((node['mean'], node['var']))
  return out


def batch_moments(feat: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-channel mean and population (biased) variance over N·H·W: [C], [C].

  The two-pass form (mean of squared deviations), as ``torch.var(unbiased=False)``.
  """
  f = feat.reshape(-1, feat.shape[-1])
  mean = f.mean(0)
  return mean, jnp.mean(jnp.square(f - mean), axis=0)


def batch_cov(feat: jax.Array) -> jax.Array:
  """Population channel covariance over N·H·W positions, [C, C] (``torch.cov``,
  ``correction=0``; UniDD Eq. 18's Ψ)."""
  f = feat.reshape(-1, feat.shape[-1])
  d = f - f.mean(0)
  return d.T @ d / f.shape[0]


# ---------------------------------------------------------------------------------
# Streaming statistics over the training set
# ---------------------------------------------------------------------------------
def _merge(a, b):
  """Chan et al. (1979) pairwise merge of (n, mean, M2) with M2 = Σ (x−μ)(x−μ)ᵀ or
  Σ (x−μ)² (any trailing shape); all float64."""
  (na, ma, qa), (nb, mb, qb) = a, b
  n = na + nb
  if nb == 0:
    return a
  delta = mb - ma
  mean = ma + delta * (nb / n)
  if qa.ndim == delta.ndim + 1:    # covariance: outer product
    corr = np.einsum('...i,...j->...ij', delta, delta)
  else:
    corr = delta * delta
  return n, mean, qa + qb + corr * (na * nb / n)


def _moments(f, cov):
  """(n, mean, M2) of rows f [n, C] in float64; M2 is [C, C] with ``cov``."""
  n = f.shape[0]
  if n == 0:
    c = f.shape[1]
    return 0, np.zeros(c), np.zeros((c, c) if cov else c)
  mean = f.mean(0)
  d = f - mean
  return n, mean, (d.T @ d if cov else (d * d).sum(0))


def accumulate_statistics(feature_fn: Callable, x, y, num_classes: int,
                          batch_size: int, *, cov: bool = True,
                          class_cov: bool = False) -> dict:
  """Per-layer channel statistics of a teacher over a whole data set, in batches.

  Per batch, the features go to the host and their (count, mean, centred sums of
  squares / cross-products) are merged into the running ones with Chan et al.'s
  pairwise formula, all in float64: no E[x²] − E[x]² cancellation, no float32
  sums over millions of positions. Per-class statistics merge the rows of each
  class the same way.

  Args:
    feature_fn: images [B, H, W, C] -> dict name -> features [B, h, w, c] (or [B, c]);
      e.g. ``lambda xb: layer_inputs(model, variables, xb)[1]``. Jitted here (a
      smaller last batch compiles once more).
    x: [N, H, W, C] images (numpy or jax).
    y: [N] integer labels.
    num_classes: K.
    batch_size: images per forward.
    cov: also the global channel covariance (CFM).
    class_cov: also per-class covariances ([K, c, c] per layer; memory K·c²).

  Returns:
    {name: {'count' N·h·w, 'mean' [c], 'var' [c], 'cov' [c, c]?, 'class_count' [K]
    (positions), 'class_mean' [K, c], 'class_var' [K, c], 'class_cov' [K, c, c]?,
    'class_var_within' [K, c], 'flc' [c, K]}} as float64 numpy. Variances and
    covariances are population ones (divided by the count). 'class_var_within' is
    EDC's per-class "variance" (``utils.py`` pre_hook_fn): the class mean of each
    image's spatial variance, which omits the spread of the image means.
    'flc' is UniDD Eq. 18's Φ = X'ᵀY / N with X' the spatially averaged features
    (= class_mean.T · N_c / N). Classes without images have zeros.

  Raises:
    ConfigError: batch_size or num_classes < 1.
  """
  if int(batch_size) < 1:
    raise ConfigError(f'batch_size={batch_size!r} is not supported; accepted: int >= 1')
  if int(num_classes) < 1:
    raise ConfigError(f'num_classes={num_classes!r} is not supported; accepted: int >= 1')
  y = np.asarray(y)
  fn = jax.jit(feature_fn)
  state = {}
  for start in range(0, len(y), batch_size):
    feats = fn(jnp.asarray(x[start:start + batch_size]))
    yb = y[start:start + batch_size]
    for name, f in feats.items():
      f = np.asarray(f, np.float64)
      f = f.reshape(f.shape[0], -1, f.shape[-1])          # [B, P, c]
      c = f.shape[-1]
      if name not in state:
        state[name] = {
            'all': _moments(np.zeros((0, c)), cov),
            'class': [_moments(np.zeros((0, c)), class_cov) for _ in range(num_classes)],
            'within': np.zeros((num_classes, c)), 'images': np.zeros(num_classes)}
      s = state[name]
      rows = f.reshape(-1, c)
      s['all'] = _merge(s['all'], _moments(rows, cov))
      within = f.var(axis=1)                                  # [B, c] per image
      for k in np.unique(yb):
        sel = yb == k
        s['class'][k] = _merge(s['class'][k], _moments(f[sel].reshape(-1, c), class_cov))
        s['within'][k] += within[sel].sum(0)
        s['images'][k] += sel.sum()
  return {name: _finish(s, cov, class_cov) for name, s in state.items()}


def _finish(s, cov, class_cov):
  n, mean, m2 = s['all']
  out = {'count': n, 'mean': mean}
  if cov:   # M2 is the [c, c] scatter matrix; the variance is its diagonal
    out['cov'] = m2 / n
    out['var'] = np.diag(out['cov']).copy()
  else:
    out['var'] = m2 / n
  counts = np.array([cl[0] for cl in s['class']], np.float64)
  safe = np.maximum(counts, 1)
  out['class_count'] = counts
  out['class_mean'] = np.stack([cl[1] for cl in s['class']])
  q = np.stack([cl[2] for cl in s['class']])
  if class_cov:
    out['class_cov'] = q / safe[:, None, None]
    out['class_var'] = np.diagonal(out['class_cov'], axis1=1, axis2=2).copy()
  else:
    out['class_var'] = q / safe[:, None]
  out['class_var_within'] = s['within'] / np.maximum(s['images'], 1)[:, None]
  out['flc'] = (out['class_mean'] * (counts / n)[:, None]).T
  return out


# ---------------------------------------------------------------------------------
# SRe2L
# ---------------------------------------------------------------------------------
def sre2l_bn_loss(bn_inputs: Sequence[jax.Array], running: Sequence[tuple],
                  first_multiplier: float = 10.0) -> jax.Array:
  """R_BN = Σ_l w_l (‖μ_l − μ̂_l‖₂ + ‖σ²_l − σ̂²_l‖₂), w_0 = first_multiplier, else 1.

  SRe2L Eq. 4's BN-statistic regulariser as coded (``small_dataset/utils.py``
  BNFeatureHook): μ_l, σ²_l are the synthetic batch's per-channel mean and biased
  variance of the input of BN layer l; μ̂, σ̂² its running statistics (the teacher is
  in eval mode). Norms are L2, not squared.

  Args:
    bn_inputs: per BN layer, shallow to deep, [N, H, W, C].
    running: per BN layer, (running mean [C], running var [C]).
    first_multiplier: weight of the first BN layer (``--first-bn-multiplier`` 10).
  """
  total = 0.0
  for i, (feat, (r_mean, r_var)) in enumerate(zip(bn_inputs, running)):
    mean, var = batch_moments(feat)
    term = safe_norm(r_var - var) + safe_norm(r_mean - mean)
    total = total + (first_multiplier if i == 0 else 1.0) * term
  return total


def sre2l_loss(logits, labels, bn_inputs, running, *, r_bn: float = 0.01,
               first_multiplier: float = 10.0):
  """SRe2L recover loss: mean CE(logits, labels) + r_bn · R_BN (docs/methods.md §1 SRe2L).

  r_bn 0.01 is the CIFAR script's value (the argparse default is 0.05).

  Args:
    logits: [N, K] teacher outputs on the synthetic batch.
    labels: [N] integer targets.
    bn_inputs, running, first_multiplier: see ``sre2l_bn_loss``.

  Returns:
    (loss, {'ce', 'bn'}).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  bn = sre2l_bn_loss(bn_inputs, running, first_multiplier)
  return ce + r_bn * bn, {'ce': ce, 'bn': bn}
