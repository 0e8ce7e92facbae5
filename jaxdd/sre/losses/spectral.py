"""UniDD: dataset-distillation objectives as spectral filters, and CFM's loss.

UniDD (Bo, Liu, Wang; ``papers/001``, §2 and Table 1) reads DM, DC, MTT and FRePo, for
a fixed feature extractor and a linear classifier, as one objective (Eq. 1):

    min ‖ f(Ψ) g(Φ) − f(Ψ_s) g(Φ_s) ‖²_F,   Ψ = XᵀX/n (FFC),  Φ = XᵀY/n (FLC),

with X [n, d] features, Y [n, c] labels, g(Φ) ∈ {I, Φ}, and a filter f acting on the
eigenvalues of Ψ (Eq. 2: f(Ψ) = U f(Λ) Uᵀ): DM f = 1, DC f ∈ {1, λ}, MTT
f = (1 − αλ)^{p,q}, FRePo f = (λ + β)⁻¹. The paper writes XᵀX unnormalised; here
``normalize=True`` (the default) divides by n, as its Eq. 18 does, which rescales
the filter parameters (β, α) by n.

Curriculum Frequency Matching (CFM, §3; docs/methods.md §2 "UniDD") applies the high-pass
FRePo filter to every layer's input-feature covariance with a β that decays on a
cosine over the sequential synthetic batches; ``cfm_*`` below are its pieces as pure
functions. The teacher side comes from ``statistics.accumulate_statistics``.

``plot_filtered_spectra`` is a diagnostic PNG drawn with Pillow (matplotlib is not a
dependency of jaxdd).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageDraw

from jaxdd.errors import ConfigError
from jaxdd.sre.losses.statistics import batch_cov
from jaxdd.sre.losses.statistics import safe_norm

METHODS = ('dm', 'dc', 'mtt', 'frepo')
CFM_FILTERS = ('hfm', 'lfm')
CFM_SIGNALS = ('class', 'mean')


def _check(field, value, accepted):
  if value not in accepted:
    raise ConfigError(f'{field}={value!r} is not supported; accepted: '
                      f'{", ".join(map(repr, accepted))}')


# ---------------------------------------------------------------------------------
# Correlation matrices and the Table 1 filters
# ---------------------------------------------------------------------------------
def ffc(x: jax.Array, normalize: bool = True) -> jax.Array:
  """Feature-feature correlation Ψ = XᵀX / n (or XᵀX): [n, d] -> [d, d]."""
  psi = x.T @ x
  return psi / x.shape[0] if normalize else psi


def flc(x: jax.Array, y: jax.Array, normalize: bool = True) -> jax.Array:
  """Feature-label correlation Φ = XᵀY / n (or XᵀY): [n, d], [n, c] -> [d, c]."""
  phi = x.T @ y
  return phi / x.shape[0] if normalize else phi


def filter_response(method: str, lam, *, alpha: float = 0.1, steps: int = 1,
                    beta: float = 0.1):
  """The scalar filter f(λ) of Table 1, on eigenvalues ``lam`` (any shape).

  dm: 1 (all-pass); dc: λ (the low-pass half; its g = Φ half is all-pass);
  mtt: (1 − αλ)^steps; frepo: 1 / (λ + β).
  """
  _check('method', method, METHODS)
  lam = jnp.asarray(lam)
  if method == 'dm':
    return jnp.ones_like(lam)
  if method == 'dc':
    return lam
  if method == 'mtt':
    return (1 - alpha * lam) ** steps
  return 1 / (lam + beta)


def spectral_filter(psi: jax.Array, signal: jax.Array, f) -> jax.Array:
  """U f(Λ) Uᵀ · signal for symmetric Ψ = U Λ Uᵀ (UniDD Eq. 2), via ``eigh``.

  Args:
    psi: [d, d] symmetric.
    signal: [d, c] (g(Φ) = Φ) or [d, d] (g = I).
    f: elementwise function of the eigenvalues.
  """
  lam, u = jnp.linalg.eigh(psi)
  return (u * f(lam)) @ (u.T @ signal)


def _mtt_terms(psi, phi, alpha, steps):
  """((I − αΨ)^P, Σ_{p<P} (I − αΨ)^p Φ) by a scan of P steps (Eq. 9)."""
  a = jnp.eye(psi.shape[0], dtype=psi.dtype) - alpha * psi

  def body(carry, _):
    power, acc = carry                  # (I − αΨ)^p, Σ_{q<p} (I − αΨ)^q Φ
    return (a @ power, acc + power @ phi), None

  init = (jnp.eye(psi.shape[0], dtype=psi.dtype), jnp.zeros_like(phi))
  (power, acc), _ = jax.lax.scan(body, init, None, length=steps)
  return power, acc


def dm_filter(x, y, *, normalize: bool = True):
  """DM (Table 1, Eq. 3): f = 1, g = Φ. Returns the matched terms (Φ,)."""
  return (flc(x, y, normalize),)


def dc_filter(x, y, *, normalize: bool = True):
  """DC (Table 1, Eq. 6, the upper bound of gradient matching): f = λ with g = I and
  f = 1 with g = Φ. Returns (Ψ, Φ)."""
  return ffc(x, normalize), flc(x, y, normalize)


def mtt_filter(x, y, *, alpha: float, steps: int, normalize: bool = True):
  """MTT (Table 1, Eq. 10): f = (1 − αλ)^P with g = I, and f = Σ_{p<P} (1 − αλ)^p
  with g = Φ. Returns ((I − αΨ)^P, Σ_{p<P} (I − αΨ)^p Φ); the objective weighs the
  second by α. ``steps`` is P for the real data, Q for the synthetic data."""
  return _mtt_terms(ffc(x, normalize), flc(x, y, normalize), alpha, steps)


def frepo_filter(x, y, *, beta: float, normalize: bool = True):
  """FRePo / linear-kernel KRR (Table 1, Eq. 15): f = (λ + β)⁻¹, g = Φ.
  Returns ((Ψ + βI)⁻¹ Φ,), computed with ``solve``."""
  psi, phi = ffc(x, normalize), flc(x, y, normalize)
  return (jnp.linalg.solve(psi + beta * jnp.eye(psi.shape[0], dtype=psi.dtype), phi),)


def unidd_loss(method: str, x, y, xs, ys, *, alpha: float = 0.1, steps_real: int = 1,
               steps_syn: int = 1, beta: float = 0.1, normalize: bool = True):
  """UniDD Eq. 1 with the filter of ``method``: Σ_terms w ‖T(X, Y) − T(X_s, Y_s)‖²_F.

  The weights are 1, except MTT's signal term (α, Eq. 10).

  Args:
    method: 'dm', 'dc', 'mtt' or 'frepo'.
    x, y: real features [n, d] and labels [n, c]; xs, ys: synthetic [m, d], [m, c].
    alpha, steps_real, steps_syn: MTT's learning rate and P, Q.
    beta: FRePo's ridge.
  """
  _check('method', method, METHODS)
  if method == 'mtt':
    real = mtt_filter(x, y, alpha=alpha, steps=steps_real, normalize=normalize)
    syn = mtt_filter(xs, ys, alpha=alpha, steps=steps_syn, normalize=normalize)
    weights = (1.0, alpha)
  else:
    fn = {'dm': dm_filter, 'dc': dc_filter,
          'frepo': lambda a, b, normalize: frepo_filter(a, b, beta=beta,
                                                        normalize=normalize)}[method]
    real, syn = fn(x, y, normalize=normalize), fn(xs, ys, normalize=normalize)
    weights = (1.0,) * len(real)
  return sum(w * jnp.sum((r - s) ** 2) for w, r, s in zip(weights, real, syn))


# ---------------------------------------------------------------------------------
# CFM
# ---------------------------------------------------------------------------------
def cfm_beta(k, ipc: int, beta: float = 0.1, cosine: bool = True):
  """β of the k-th sequential batch (0-based): β(1 + cos(πk/IPC))/2 (UniDD Eq. 16;
  ``synthesis_small.py`` ``--cos``: ``for ipc in range(args.ipc)``), or β without
  ``cosine``. β_0 = β, and β_k decreases towards 0 (more high-frequency)."""
  if int(ipc) < 1:
    raise ConfigError(f'ipc={ipc!r} is not supported; accepted: int >= 1')
  if not cosine:
    return beta * jnp.ones_like(jnp.asarray(k, jnp.float32))
  return beta * (1 + jnp.cos(jnp.pi * jnp.asarray(k, jnp.float32) / ipc)) / 2


def emu_update(running, current, k):
  """CFM's moving update (UniDD Eq. 19, ``--ema``): (1 − 1/k)·running + (1/k)·current.

  ``k`` is the 1-based index of the current sequential batch, so the result is the
  plain mean of the k batches' statistics: the synthetic statistic used in batch k
  (``current`` = this batch's, differentiable) and, after the batch, the stored one
  (``current`` = its final, detached statistic). Pytrees of arrays.
  """
  k = jnp.asarray(k, jnp.float32)
  return jax.tree_util.tree_map(lambda r, c: (1 - 1 / k) * r + c / k, running, current)


def cfm_batch_stats(feat: jax.Array, onehot: jax.Array | None = None,
                    signal: str = 'class'):
  """Ψ and the signal of one layer's input features (UniDD Eq. 17–18).

  Args:
    feat: [N, H, W, C] features.
    onehot: [N, K] labels (needed for signal='class').
    signal: 'class': Φ = X'ᵀY/N with X' [N, C] the spatial means (paper Eq. 18,
      ``hook.py`` signal='class'); 'mean': the channel mean μ [C] (``hook.py``'s
      default signal='mean', docs/methods.md).

  Returns:
    (Ψ [C, C], population covariance over N·H·W; signal [C, K] or [C]).
  """
  _check('signal', signal, CFM_SIGNALS)
  cov = batch_cov(feat)
  if signal == 'mean':
    return cov, feat.reshape(-1, feat.shape[-1]).mean(0)
  x_avg = feat.reshape(feat.shape[0], -1, feat.shape[-1]).mean(1)
  return cov, x_avg.T @ onehot / feat.shape[0]


def cfm_layer_loss(cov_t, sig_t, cov_s, sig_s, beta, kind: str = 'hfm'):
  """‖F_t − F_s‖_F + ‖F_t s_t − F_s s_s‖_F for one layer (UniDD Eq. 20, per layer).

  HFM: F = (Ψ + βI)⁻¹, obtained with one ``solve`` of (Ψ + βI) against [I | s]
  (no explicit inverse); LFM: F = Ψ. The norms are not squared, as in Eq. 20 and
  ``hook.py`` (``torch.norm(·, 'fro')``, ``torch.norm(·, 2)`` on the flattened matrix).

  Args:
    cov_t, cov_s: [C, C] teacher / synthetic Ψ.
    sig_t, sig_s: [C] or [C, K] teacher / synthetic signal.
    beta: scalar ridge (may be traced).
    kind: the filter, 'hfm' or 'lfm' (``--filter``).
  """
  _check('filter', kind, CFM_FILTERS)

  def apply(cov, sig):
    sig2 = sig.reshape(sig.shape[0], -1)
    if kind == 'lfm':
      return cov, cov @ sig2
    eye = jnp.eye(cov.shape[0], dtype=cov.dtype)
    sol = jnp.linalg.solve(cov + beta * eye, jnp.concatenate([eye, sig2], 1))
    return sol[:, :cov.shape[0]], sol[:, cov.shape[0]:]

  f_t, fs_t = apply(cov_t, sig_t)
  f_s, fs_s = apply(cov_s, sig_s)
  return safe_norm(f_t - f_s) + safe_norm(fs_t - fs_s)


def cfm_loss(logits, labels, syn_stats: Sequence[tuple], teacher_stats: Sequence[tuple],
             beta, *, eta: float = 0.1, kind: str = 'hfm'):
  """CFM total loss: mean CE + η Σ_layers (filter + signal) (UniDD Eq. 21, η = 0.1).

  Args:
    logits: [N, K] teacher logits on the (augmented) synthetic batch.
    labels: [N] integer labels.
    syn_stats: per layer (Ψ_s, s_s), e.g. ``emu_update`` of ``cfm_batch_stats``.
    teacher_stats: per layer (Ψ_t, s_t) of the full training set.
    beta: this batch's β (``cfm_beta``).
    eta: weight of the matching terms.
    kind: 'hfm' or 'lfm', see ``cfm_layer_loss``.

  Returns:
    (loss, {'ce', 'match'}).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  match = sum(cfm_layer_loss(ct, st, cs, ss, beta, kind)
              for (cs, ss), (ct, st) in zip(syn_stats, teacher_stats))
  return ce + eta * match, {'ce': ce, 'match': match}


# ---------------------------------------------------------------------------------
# Diagnostic plot (Pillow)
# ---------------------------------------------------------------------------------
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))


def plot_filtered_spectra(real_feats, syn_feats, path: str, *, method: str = 'frepo',
                          beta: float = 0.1, alpha: float = 0.1, steps: int = 1,
                          size: tuple[int, int] = (640, 400)) -> dict:
  """Writes a PNG of the eigenvalue spectra of Ψ (real, synthetic) and of their
  filtered versions f(λ) under ``method`` (log₁₀ scale, eigenvalues in descending
  order, i.e. low to high frequency), drawn with Pillow.

  Args:
    real_feats: [n, d] real features (or [n, ..., d], flattened to rows).
    syn_feats: [m, d] synthetic features.
    path: output .png.
    method, beta, alpha, steps: the filter, see ``filter_response``.

  Returns:
    The plotted series: {'real', 'syn', 'real_filtered', 'syn_filtered'}, each a
    float64 numpy array of length d.
  """

  _check('method', method, METHODS)
  series = {}
  for name, f in (('real', real_feats), ('syn', syn_feats)):
    f = np.asarray(f, np.float64)
    f = f.reshape(-1, f.shape[-1])
    lam = np.sort(np.linalg.eigvalsh(f.T @ f / f.shape[0]))[::-1]
    series[name] = lam
    series[name + '_filtered'] = np.asarray(
        filter_response(method, lam, alpha=alpha, steps=steps, beta=beta), np.float64)

  w, h = size
  left, right, top, bottom = 60, 20, 30, 40
  img = Image.new('RGB', size, 'white')
  draw = ImageDraw.Draw(img)
  logs = {k: np.log10(np.maximum(np.abs(v), 1e-12)) for k, v in series.items()}
  lo = min(v.min() for v in logs.values())
  hi = max(v.max() for v in logs.values())
  hi = hi if hi > lo else lo + 1
  draw.rectangle([left, top, w - right, h - bottom], outline='black')
  for name, colour in zip(series, _COLOURS):
    v = logs[name]
    xs = left + (w - left - right) * np.arange(len(v)) / max(len(v) - 1, 1)
    ys = (h - bottom) - (h - top - bottom) * (v - lo) / (hi - lo)
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=2)
  legend = ', '.join(series)
  draw.text((left, 8), f'log10 eigenvalues of Psi and {method} f(lambda): {legend}',
            fill='black')
  for i, (name, colour) in enumerate(zip(series, _COLOURS)):
    draw.rectangle([left + 150 * i, h - 22, left + 150 * i + 10, h - 12], fill=colour)
    draw.text((left + 150 * i + 14, h - 24), name, fill='black')
  draw.text((4, top), f'{hi:.1f}', fill='black')
  draw.text((4, h - bottom - 10), f'{lo:.1f}', fill='black')
  img.save(path, format='PNG')
  return series


__all__ = ['ffc', 'flc', 'filter_response', 'spectral_filter', 'dm_filter', 'dc_filter',
           'mtt_filter', 'frepo_filter', 'unidd_loss', 'cfm_beta', 'emu_update',
           'cfm_batch_stats', 'cfm_layer_loss', 'cfm_loss', 'plot_filtered_spectra']
