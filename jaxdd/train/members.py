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


def over_members(fn: Callable[[Any], Any], xs, how: str = 'auto'):
  """``fn(x)`` for every x along the leading axis of the pytree ``xs``, stacked.

  'vmap' batches the members in one program; 'map' runs them one after another
  (``lax.map``); both compile once and give the same numbers up to float rounding
  (tests/test_train.py). 'auto' is 'map' on the CPU and 'vmap' elsewhere: one
  ConvNet-3 training step already keeps both cores of a CPU busy, and five networks
  side by side multiply the working set, which costs more than it saves (MNIST IPC 10,
  5 seeds: 290 ms per network-step vmapped vs 197 ms one at a time on 2 cores);
  accelerators want the batch.

  Raises:
    ConfigError: ``how`` is not one of ``MEMBER_LOOPS`` (named as ``seed_loop``, the
      config field that sets it).
  """
  check_member_loop(how)
  if how == 'auto':
    how = 'map' if jax.default_backend() == 'cpu' else 'vmap'
  return jax.vmap(fn)(xs) if how == 'vmap' else jax.lax.map(fn, xs)
