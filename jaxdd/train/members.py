"""Members: networks trained together from one seed, each with its own key streams.

Member ``i`` of a group seeded with ``seed`` (an evaluation seed, an expert, a teacher)
uses ``k_i = fold_in(key(seed), i)``, or ``fold_in(key, i)`` from a key, and draws
everything from three streams ``init, data, aug = split(k_i, 3)``: its initial
weights, the order of its data and its augmentation. So member ``i`` is the same
network whether trained alone or with others, and a group can be trained in chunks.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdd import sharding
from jaxdd.errors import ConfigError

MEMBER_LOOPS = ('auto', 'vmap', 'map')


class Streams(NamedTuple):
  """The three keys of a member: ``split(k_i, 3)`` in this order."""
  init: jax.Array
  data: jax.Array
  aug: jax.Array


def member_key(seed, i) -> jax.Array:
  """``fold_in(key(seed), i)``: the key of member ``i``; traceable in seed and i."""
  return jax.random.fold_in(jax.random.key(seed), i)


def member_keys(key, num: int) -> jax.Array:
  """[num] keys ``fold_in(key, i)`` for i = 0..num-1 (one evaluation seed each)."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num))


def streams(key) -> Streams:
  """``init, data, aug = split(key, 3)`` of a member key."""
  init, data, aug = jax.random.split(key, 3)
  return Streams(init, data, aug)


def check_member_loop(how: str) -> None:
  """Raises ConfigError unless ``how`` is one of ``MEMBER_LOOPS``."""
  if how not in MEMBER_LOOPS:
    raise ConfigError(f'seed_loop must be one of {", ".join(MEMBER_LOOPS)}, got {how!r}')


def over_members(fn: Callable[[Any], Any], xs, how: str = 'auto', *, manual: bool = False):
  """``fn(x)`` for every x along the leading axis of the pytree ``xs``, stacked.

  'vmap' batches the members in one program; 'map' runs them one after another
  (``lax.map``); both compile once and give the same numbers up to float rounding
  (tests/test_train.py). 'auto' is 'map' on the CPU and 'vmap' elsewhere: one
  ConvNet-3 training step already keeps both cores of a CPU busy, and five networks
  side by side multiply the working set, which costs more than it saves (MNIST IPC 10,
  5 seeds: 290 ms per network-step vmapped vs 197 ms one at a time on 2 cores);
  accelerators want the batch.

  On a mesh (``jaxdd.sharding``) the members are split over its ``members`` axis: their
  count is padded to a multiple of the axis (copies of member 0, dropped from the
  result), each device takes every ``m``-th member, and 'map' / 'vmap' say how a device
  runs its own share. Member ``i`` computes the same numbers on any device count.
  ``manual=True`` splits them with ``shard_map`` instead of a sharding constraint: for
  members that share a closed-over input, which ``vmap`` folds into a convolution's
  feature groups where XLA's partitioner does not split them (FRePo's pool). It
  cannot be used where ``fn`` indexes a closed-over array with a traced index.

  Raises:
    ConfigError: ``how`` is not one of ``MEMBER_LOOPS`` (named as ``seed_loop``, the
      config field that sets it).
  """
  check_member_loop(how)
  if how == 'auto':
    how = 'map' if jax.default_backend() == 'cpu' else 'vmap'
  devices = sharding.context_axis_size(sharding.MEMBERS)
  if devices == 1:
    return jax.vmap(fn)(xs) if how == 'vmap' else jax.lax.map(fn, xs)
  if manual:
    return _over_member_devices_manual(fn, xs, how, devices)
  return _over_member_devices(fn, xs, how, devices)


def _over_member_devices(fn, xs, how: str, devices: int):
  """``over_members`` on a mesh with ``devices`` along ``members``: [rounds, devices]
  members, the second axis split over the devices, the first vmapped or mapped."""
  num = jax.tree_util.tree_leaves(xs)[0].shape[0]
  rounds = -(-num // devices)
  pad = rounds * devices - num

  def lay_out(x):   # [num, ...] -> [rounds, devices, ...], padded with member 0
    x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]) if pad else x
    x = x.reshape((rounds, devices) + x.shape[1:])
    return sharding.constrain(x, None, sharding.MEMBERS)

  def gather(y):    # [rounds, devices, ...] -> [num, ...]
    y = sharding.constrain(y, None, sharding.MEMBERS)   # computed where it lies
    return y.reshape((rounds * devices,) + y.shape[2:])[:num]

  across = jax.vmap(fn, spmd_axis_name=sharding.MEMBERS)
  laid = jax.tree_util.tree_map(lay_out, xs)
  out = jax.vmap(across)(laid) if how == 'vmap' else jax.lax.map(across, laid)
  return jax.tree_util.tree_map(gather, out)


def _over_member_devices_manual(fn, xs, how: str, devices: int):
  """``over_members(manual=True)``: the members padded to [devices * rounds], each
  device running its own ``rounds`` in a ``shard_map`` over ``members``."""
  num = jax.tree_util.tree_leaves(xs)[0].shape[0]
  pad = -(-num // devices) * devices - num

  def lay_out(x):   # padded with member 0
    return jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]) if pad else x

  def local(chunk):  # this device's members
    return jax.vmap(fn)(chunk) if how == 'vmap' else jax.lax.map(fn, chunk)

  spec = jax.sharding.PartitionSpec(sharding.MEMBERS)
  out = jax.shard_map(local, in_specs=spec, out_specs=spec,
                      axis_names={sharding.MEMBERS}, check_vma=False)(
                          jax.tree_util.tree_map(lay_out, xs))
  return jax.tree_util.tree_map(lambda y: y[:num], out)
