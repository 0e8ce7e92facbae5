"""The 2-D discrete cosine transform as pure functions: two fixed matrix products.

FreD (Shin, Shin & Moon, "Frequency Domain-based Dataset Distillation", NeurIPS 2023)
stores synthetic images as masked DCT coefficients and decodes them with the inverse
DCT. The DCT is separable, so over the spatial axes of a channels-last [..., H, W, C]
array it is ``D_H · x · D_Wᵀ`` per channel: two einsums with constant matrices, which
XLA fuses and differentiates like any matmul (no FFT needed at these sizes).

Two scalings:

- ``norm='ortho'`` (the default): the orthonormal DCT-II, ``X_k = s_k Σ_n x_n
  cos(π k (2n+1) / (2N))`` with ``s_0 = sqrt(1/N)``, ``s_k = sqrt(2/N)``. Its inverse
  is its transpose, it preserves energy, and a learning rate means the same in
  coefficient space as in pixel space.
- ``norm=None``: the authors' unnormalised transform (torch_dct / scipy ``norm=None``),
  ``X_k = 2 Σ_n x_n cos(π k (2n+1) / (2N))``, inverted by the matching scaled DCT-III.
  It exists to reproduce the authors' hyperparameters: per axis it is the orthonormal
  one times ``g_k = 2 sqrt(N)`` (k = 0) or ``sqrt(2N)`` (k > 0), so in 2-D a
  coefficient is ``g_k g_l`` times larger and its gradient ``g_k g_l`` times smaller.
  An SGD step on it therefore moves the image as an orthonormal step with the learning
  rate divided by ``(g_k g_l)²`` (4HW for most coefficients on an H×W image, 8HW or
  16HW on the first row/column): this is why FreD's learning rates are 1e3 to 1e8.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ('ortho', None)


def _check_norm(norm) -> None:
  if norm not in NORMS:
    raise ValueError(f"DCT norm must be 'ortho' or None, got {norm!r}")


def _frozen(a: np.ndarray) -> np.ndarray:
  a.setflags(write=False)   # the matrices are cached and shared: no caller may edit one
  return a


@functools.lru_cache(maxsize=None)
def dct_matrix(n: int, norm: str | None = 'ortho') -> np.ndarray:
  """The 1-D DCT-II matrix ``D`` (float64 [n, n]) with ``X = D @ x``.

  Args:
    n: the signal length N.
    norm: 'ortho' (orthonormal) or None (the unnormalised ``2 Σ x_n cos(...)``).
  """
  _check_norm(norm)
  k = np.arange(n)[:, None]
  i = np.arange(n)[None, :]
  basis = np.cos(np.pi * k * (2 * i + 1) / (2 * n))
  if norm is None:
    return _frozen(2.0 * basis)
  scale = np.full((n, 1), np.sqrt(2.0 / n))
  scale[0] = np.sqrt(1.0 / n)
  return _frozen(scale * basis)


@functools.lru_cache(maxsize=None)
def idct_matrix(n: int, norm: str | None = 'ortho') -> np.ndarray:
  """The inverse of ``dct_matrix(n, norm)`` (float64 [n, n]), ``x = D⁻¹ @ X``.

  The transpose for 'ortho'; for None the scaled DCT-III ``x_n = X_0 / (2N) +
  (1/N) Σ_{k>0} X_k cos(π k (2n+1) / (2N))``, written in closed form rather than by a
  numerical inversion.
  """
  ortho = dct_matrix(n, 'ortho')
  if norm == 'ortho':
    return ortho.T
  _check_norm(norm)
  gain = np.full(n, np.sqrt(2.0 * n))     # unnormalised = diag(gain) @ orthonormal
  gain[0] = 2.0 * np.sqrt(n)
  return _frozen(ortho.T / gain[None, :])


def _separable(x: jnp.ndarray, mat_h: np.ndarray, mat_w: np.ndarray) -> jnp.ndarray:
  """``mat_h · x[..., :, :, c] · mat_wᵀ`` for every leading index and channel."""
  mh = jnp.asarray(mat_h, jnp.float32)
  mw = jnp.asarray(mat_w, jnp.float32)
  # HIGHEST: on TPU the default matmul precision rounds inputs to bfloat16, which would
  # make decode(encode(x)) visibly lossy.
  return jnp.einsum('kh,...hwc,lw->...klc', mh, x, mw,
                    precision=jax.lax.Precision.HIGHEST)


def dct2(x: jnp.ndarray, norm: str | None = 'ortho') -> jnp.ndarray:
  """The 2-D DCT-II over the spatial axes of ``x`` [..., H, W, C], per channel.

  Args:
    x: float array, channels last.
    norm: 'ortho' or None (the FreD authors' unnormalised scaling; module docstring).

  Returns:
    float32 [..., H, W, C]: coefficient ``[k, l]`` is spatial frequency k along H and
    l along W.
  """
  h, w = x.shape[-3], x.shape[-2]
  return _separable(x, dct_matrix(h, norm), dct_matrix(w, norm))


def idct2(coeffs: jnp.ndarray, norm: str | None = 'ortho') -> jnp.ndarray:
  """The inverse of ``dct2`` with the same ``norm``: ``idct2(dct2(x, n), n) == x``."""
  h, w = coeffs.shape[-3], coeffs.shape[-2]
  return _separable(coeffs, idct_matrix(h, norm), idct_matrix(w, norm))


def dct2_host(x: np.ndarray, norm: str | None = 'ortho') -> np.ndarray:
  """``dct2`` in numpy float64, for host-side initialisation.

  Computing an initialisation on the host keeps it identical on every backend (a
  float32 device matmul differs in the last bits between CPU, GPU and TPU, which could
  flip a near-tie in FreD's mask selection).
  """
  h, w = x.shape[-3], x.shape[-2]
  return np.einsum('kh,...hwc,lw->...klc', dct_matrix(h, norm),
                   np.asarray(x, np.float64), dct_matrix(w, norm))
