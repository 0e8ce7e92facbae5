"""Gradient clipping relative to a running average of past gradient norms (RaT-BPTT).

RaT-BPTT's outer loop (docs/methods.md §1 "RaT-BPTT"; reference code
`fengyzpku/Simple_Dataset_Distillation:framework/base.py train`, ``Distill.ema_update``
in ``framework/distill_higher.py``; PoDD copies it in `AsafShul/PoDD:src/PoDD.py`) clips
the meta-gradient of the synthetic images to twice an exponential moving average of the
gradient norm, coefficient 0.9. Written out, for the gradient g_t of step t (t = 1, 2, ...):

    n_t = ‖g_t‖₂                                  (global norm over the whole pytree)
    a_1 = n_1,   a_t = decay · a_{t-1} + (1 − decay) · n_t        (t > 1)
    g̃_t = g_t · min(1, factor · a_t / (n_t + 1e-6))

Three details are the reference code's, since the RaT-BPTT/PoDD papers only say "clipped
to 2× an EMA of the gradient norm":

* The EMA is updated *before* clipping and includes the current norm, so the threshold
  of step t is factor · a_t, not factor · a_{t-1}.
* The EMA is fed the *unclipped* norm n_t (``ema_update`` is called with the raw
  gradient's norm, then ``clip_grad_norm_`` clips).
* The first step initialises the EMA to n_1 (the ``shadow == -1e5`` sentinel), so with
  factor ≥ 1 the first gradient is never clipped.

``min(1, max_norm / (n + 1e-6))`` is PyTorch's ``clip_grad_norm_`` scale. The reference
clips only the images' gradient (its first parameter group), not the learned labels':
apply this transformation to the images' optimizer only.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdd.errors import ConfigError

# PyTorch's clip_grad_norm_ adds this to the norm before dividing.
TORCH_CLIP_EPS = 1e-6


class ClipByRunningNormState(NamedTuple):
  """State of ``clip_by_running_norm``.

  Attributes:
    ema: float32 scalar, the running average a_t of the gradient norms (0 before the
      first update).
    count: int32 scalar, the number of updates seen.
  """
  ema: jax.Array
  count: jax.Array


def clip_by_running_norm(factor: float = 2.0, decay: float = 0.9,
                         eps: float = TORCH_CLIP_EPS) -> optax.GradientTransformation:
  """Clips the updates' global norm to ``factor`` × an EMA of the gradient norms.

  Implements the module doc's recursion (RaT-BPTT's outer-loop clipping, docs/methods.md §1):
  ``a_1 = n_1``, ``a_t = decay·a_{t−1} + (1−decay)·n_t``, then the whole update pytree
  is multiplied by ``min(1, factor·a_t / (n_t + eps))``. The EMA sees the unclipped
  norm and includes the current step, as in the authors' code. Jit-able; the state is
  a pytree of two scalars, so it checkpoints and composes with ``optax.chain``
  (put it before the optimizer: ``optax.chain(clip_by_running_norm(), optax.adam(lr))``).

  Args:
    factor: the clipping threshold as a multiple of the running norm (> 0; RaT-BPTT: 2).
    decay: the EMA coefficient in [0, 1) (RaT-BPTT's ``--clip_coef``: 0.9).
    eps: added to the norm in the scale's denominator (PyTorch's 1e-6).

  Returns:
    An ``optax.GradientTransformation`` whose updates have the input's structure,
    shapes and dtypes.

  Raises:
    ConfigError: factor ≤ 0 or decay outside [0, 1), naming the field.
  """
  if not factor > 0:
    raise ConfigError(f'clip_factor must be > 0, got {factor!r}')
  if not 0.0 <= decay < 1.0:
    raise ConfigError(f'clip_decay must be in [0, 1), got {decay!r}')

  def init_fn(params):
    del params
    return ClipByRunningNormState(ema=jnp.zeros((), jnp.float32),
                                  count=jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    norm = optax.tree.norm(updates).astype(jnp.float32)
    ema = jnp.where(state.count == 0, norm, decay * state.ema + (1.0 - decay) * norm)
    scale = jnp.minimum(1.0, factor * ema / (norm + eps))
    updates = jax.tree_util.tree_map(lambda u: (u * scale).astype(u.dtype), updates)
    return updates, ClipByRunningNormState(ema=ema, count=state.count + 1)

  return optax.GradientTransformation(init_fn, update_fn)
