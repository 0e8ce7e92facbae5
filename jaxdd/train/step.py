"""One supervised step of a network, batch-norm state included.

A network in training is a ``TrainState``: its flax variables ('params' and, with batch
norm, the running statistics 'batch_stats') and its optimizer state. One step
(``supervised_step``) is PyTorch's ``model.train(); loss = crit(model(x), y);
loss.backward(); opt.step()``: a forward pass in train mode (batch norm normalises with
the batch statistics and updates the running ones, ``models.apply_model``), the
gradient of the batch loss with respect to the parameters, one optimizer update, and
the new running statistics kept.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.train import losses


class TrainState(NamedTuple):
  """A network in training.

  Attributes:
    variables: flax variables {'params', 'batch_stats' (batch-norm models only)}.
    opt_state: the optimizer's state for ``variables['params']``.
  """
  variables: dict
  opt_state: Any


def init_state(model, tx: optax.GradientTransformation, init_key,
               image_shape) -> TrainState:
  """A fresh network (``models.init_model`` with ``init_key``) and ``tx.init`` of it."""
  variables = models_lib.init_model(model, init_key, tuple(image_shape))
  return TrainState(variables, tx.init(variables['params']))


def supervised_step(model, tx: optax.GradientTransformation, state: TrainState, x,
                    loss_fn: Callable[[jax.Array], jax.Array], *, weights=None
                    ) -> tuple[TrainState, jax.Array, jax.Array]:
  """One optimizer step of ``model`` on the batch ``x`` [B, H, W, C].

  Args:
    model: a Flax module (``models.get_model``).
    tx: the optimizer whose state ``state.opt_state`` is.
    state: the network before the step.
    x: the (augmented) batch.
    loss_fn: logits [B, K] -> the batch loss (a scalar); with ``weights``, the loss
      of every row [B] instead.
    weights: optional float [B]: the batch loss is then Σ rows·w / Σ w
      (``losses.masked_mean``; with a 0/1 mask, the mean over a smaller batch, exact
      for models without batch norm, whose statistics would see the masked rows).

  Returns:
    (state after the step, the batch loss before it, logits [B, K] of the forward
    pass). Unused outputs cost nothing under ``jit``.
  """
  variables = state.variables
  x = sharding.shard_batch(x)   # over the mesh's ``data`` axis, if any

  def objective(params):
    logits, new_vars = models_lib.apply_model(
        model, {**variables, 'params': params}, x, train=True)
    loss = loss_fn(logits)
    if weights is not None:
      loss = losses.masked_mean(loss, weights)
    return loss, (new_vars, logits)

  (loss, (new_vars, logits)), grads = jax.value_and_grad(objective, has_aux=True)(
      variables['params'])
  updates, opt_state = tx.update(grads, state.opt_state, variables['params'])
  params = optax.apply_updates(variables['params'], updates)
  return TrainState({**new_vars, 'params': params}, opt_state), loss, logits


def cast_like(tree, reference):
  """``tree`` with the dtypes of ``reference`` leaf by leaf: a network carried in a loop
  keeps its dtypes (float64 inputs would promote the batch-norm statistics)."""
  return jax.tree_util.tree_map(lambda t, r: t.astype(r.dtype), tree, reference)
