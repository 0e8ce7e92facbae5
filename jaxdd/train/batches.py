"""The rows of each minibatch: a fresh permutation every epoch, cut into batches.

PyTorch's ``DataLoader(shuffle=True, drop_last=False)``, which every reference trains
with, draws a permutation per epoch and cuts it into batches of B with a smaller last
one. Three ways to keep that under ``jit``:

  * wrap-around (``step_rows``, ``wrapped_batch``): every batch has B rows; the last
    one of an epoch continues at the start of the same permutation, so each row is
    seen at least once per epoch and batch norm always sees B rows (evaluation,
    teachers, relabel);
  * masked (``masked_order``, ``masked_batch``): every batch gathers B rows and a 0/1
    mask marks the real ones, so a loss averaged over the mask is PyTorch's mean over
    a smaller last batch; the number of allowed rows is a traced count, so epochs of
    different sizes share one program (MTT/PAD experts; exact only without batch
    norm, whose statistics would see the padding);
  * split (``split_batches``): the full batches and the smaller last one, of static
    sizes (DCrepo's inner epochs).
"""

import math

import jax
import jax.numpy as jnp


def epoch_size(num_rows: int, batch_size: int) -> tuple[int, int]:
  """(batch, steps per epoch): the batch capped at the set size, ``ceil(N / batch)``."""
  batch = min(batch_size, num_rows)
  return batch, math.ceil(num_rows / batch)


def epoch_permutation(data_key, epoch, num_rows: int) -> jax.Array:
  """int32 [N]: the order of epoch ``epoch``: ``permutation(fold_in(data_key, epoch),
  N)``."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), num_rows)


def wrapped_batch(perm, j, batch: int) -> jax.Array:
  """int32 [batch]: rows ``perm[(j·batch + arange(batch)) mod N]`` of batch ``j``."""
  return perm[(j * batch + jnp.arange(batch)) % perm.shape[0]]


def step_rows(data_key, step, num_rows: int, batch: int, steps_per_epoch: int):
  """int32 [batch]: the rows of global step ``step`` (traced) under wrap-around.

  Step s is batch ``s mod steps_per_epoch`` of epoch ``s div steps_per_epoch``
  (``epoch_permutation``, ``wrapped_batch``): a batch never straddles two epochs.
  """
  epoch, within = jnp.divmod(step, steps_per_epoch)
  return wrapped_batch(epoch_permutation(data_key, epoch, num_rows), within, batch)


def masked_order(data_key, epoch, idx, count) -> jax.Array:
  """int32 [N]: the allowed rows ``idx[:count]`` in a uniformly random order, first.

  ``idx`` [N] holds the allowed rows padded to N (values past ``count`` are ignored),
  ``count`` (traced) their number. All N positions are permuted with
  ``epoch_permutation(data_key, epoch, N)``; a stable sort by "is padding" then lists
  the allowed positions first, keeping their random order.
  """
  pos = epoch_permutation(data_key, epoch, idx.shape[0])
  pos = pos[jnp.argsort(pos >= count, stable=True)]
  return idx[pos]


def masked_num_batches(count, batch: int):
  """``ceil(count / batch)`` for a traced count: the trip count of a masked epoch."""
  return (count + batch - 1) // batch


def masked_batch(order, j, batch: int, count) -> tuple[jax.Array, jax.Array]:
  """(rows int32 [batch], mask float32 [batch]) of batch ``j`` of ``masked_order``.

  Slots past ``count`` repeat the last row of ``order`` and have mask 0.
  """
  slot = j * batch + jnp.arange(batch)
  mask = (slot < count).astype(jnp.float32)
  rows = order[jnp.minimum(slot, order.shape[0] - 1)]
  return rows, mask


def split_batches(perm, batch: int) -> tuple[jax.Array, jax.Array]:
  """(full [N div batch, batch], last [N mod batch]): consecutive slices of ``perm``,
  the batches of ``DataLoader(drop_last=False)`` (DCrepo ``epoch('train')``)."""
  n = perm.shape[0]
  num_full = n // batch
  return perm[:num_full * batch].reshape(num_full, batch), perm[num_full * batch:]
