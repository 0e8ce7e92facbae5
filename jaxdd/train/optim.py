"""Optimizers, learning-rate schedules and weight EMA of the protocols' PyTorch code.

PyTorch's ``SGD`` and ``Adam`` add ``weight_decay · p`` to the gradient before the
update (coupled decay, ``sgd``, ``adam``); ``AdamW`` decays the weights themselves
(``adamw``: optax's p ← p − lr·(adam + wd·p) is torch's p ← p·(1 − lr·wd) − lr·adam).
Schedules are optax schedules ``step -> lr``; the per-epoch ones (PyTorch's
``CosineAnnealingLR``, ``LambdaLR``, ``MultiStepLR`` stepped after each epoch) are
constant within an epoch (``per_epoch``).
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxdd.errors import ConfigError

OPTIMIZERS = ('sgd', 'adam', 'adamw')
Schedule = float | Callable[[Any], jax.Array]


def _coupled(update: optax.GradientTransformation,
             weight_decay: float) -> optax.GradientTransformation:
  """``update`` of g + wd·p (PyTorch's coupled decay); ``update`` itself, with its
  optax state, when wd = 0."""
  if not weight_decay:
    return update
  return optax.chain(optax.add_decayed_weights(weight_decay), update)


def sgd(lr: Schedule, *, momentum: float = 0.0,
        weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``torch.optim.SGD(lr, momentum, weight_decay)``: b ← μ·b + (g + wd·p), p ← p − lr·b
  (no momentum buffer when μ = 0: p ← p − lr·(g + wd·p))."""
  return _coupled(optax.sgd(lr, momentum=momentum or None), weight_decay)


def adam(lr: Schedule, *, weight_decay: float = 0.0,
         eps_root: float = 0.0) -> optax.GradientTransformation:
  """``torch.optim.Adam(lr, weight_decay)``: β 0.9/0.999, eps 1e-8 outside the root,
  bias-corrected moments of g + wd·p. ``eps_root > 0`` keeps the square root
  differentiable at 0, which meta-gradients through Adam need (optax's ``adam`` doc)."""
  return _coupled(optax.adam(lr, eps_root=eps_root), weight_decay)


def adamw(lr: Schedule, *, weight_decay: float) -> optax.GradientTransformation:
  """``torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay)``."""
  return optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)


def optimizer(name: str, lr: Schedule, *, momentum: float = 0.0,
              weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``sgd``, ``adam`` or ``adamw`` by name (``momentum`` is SGD's only).

  Raises:
    ConfigError: ``name`` is not one of ``OPTIMIZERS``.
  """
  if name == 'sgd':
    return sgd(lr, momentum=momentum, weight_decay=weight_decay)
  if name == 'adam':
    return adam(lr, weight_decay=weight_decay)
  if name == 'adamw':
    return adamw(lr, weight_decay=weight_decay)
  raise ConfigError(f'optimizer must be one of {", ".join(OPTIMIZERS)}, got {name!r}')


def step_decay(lr: float, decay_step: int, factor: float = 0.1) -> optax.Schedule:
  """lr before step ``decay_step``, lr·factor from it on (DCrepo ``evaluate_synset``:
  ×0.1 half-way through)."""
  return optax.piecewise_constant_schedule(lr, {decay_step: factor})


def per_epoch(lr: float, steps_per_epoch: int,
              factor: Callable[[Any], jax.Array]) -> optax.Schedule:
  """``step -> lr · factor(step div steps_per_epoch)``: a schedule stepped per epoch."""
  return lambda step: lr * factor(jnp.asarray(step) // steps_per_epoch)


def cosine_factor(epoch, period) -> jax.Array:
  """½·(1 + cos(π·e / period)) for (0-based) epochs e of any shape; float32.

  ``CosineAnnealingLR(T_max=E)`` with period E (to 0 at e = E, back up after it);
  UniDD's quarter cosine with period 2E, EDC's smoothed schedule with ζ·E.
  """
  e = jnp.asarray(epoch, jnp.float32)
  return 0.5 * (1.0 + jnp.cos(jnp.pi * e / period))


def multistep_factor(epoch, milestones: Sequence[int], gamma: float) -> jax.Array:
  """gamma^(number of milestones ≤ e) for epochs e of any shape (``MultiStepLR``)."""
  e = jnp.asarray(epoch, jnp.float32)
  count = sum((e >= m).astype(jnp.float32) for m in milestones)
  return jnp.float32(gamma) ** count * jnp.ones_like(e)


def ema_update(ema, params, decay: float):
  """One step of weight EMA, ema ← d·ema + (1 − d)·params, leaf by leaf (EDC's
  ``EMAMODEL``)."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
