"""Pure helpers around the models: init/apply for BN and non-BN models alike, and a
flat parameter vector ordered shallow to deep (for trajectory matching and PAD).

Parameter order. PAD masks "the first fraction" of the flat parameter vector, i.e.
the shallow layers, so the order must be depth order. Neither of the obvious
orders is: `jax.tree_util` / `ravel_pytree` sort dict keys as strings ('Conv_10'
before 'Conv_2'), and the insertion order of the dict from `init` (which *is*
creation = depth order) does not survive `jit`, `tree_map` or an optax update,
all of which rebuild dicts with sorted keys. So the order here depends on the key
names only, never on the dict's order:

  at every level, keys are sorted by (rank, natural key), where the natural key
  compares digit runs as integers ('block_2' < 'block_10'), and rank puts 'stem'
  first and 'classifier' last among modules, and 'kernel' / 'scale' before 'bias'
  within a layer (PyTorch's weight-then-bias order).

jaxdd's models name their submodules so that this is depth order ('block_i' with
'conv' before 'norm', 'layer{s}_{b}' with 'residual_1', 'residual_2', 'shortcut',
...); plain Flax names ('Conv_0', ..., 'Conv_10', 'Dense_0') also come out in
creation order per type.
"""

from collections.abc import Callable, Mapping
import math
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Keys not listed have rank 0.
_KEY_RANK = {'stem': -1, 'classifier': 1, 'kernel': 0, 'scale': 0, 'bias': 1}


def _key_order(name: str):
  # re.split with a capture group alternates text and digits, starting with text,
  # so tuples from two names always compare str with str and int with int.
  parts = re.split(r'(\d+)', str(name))
  natural = tuple(int(p) if i % 2 else p for i, p in enumerate(parts))
  return (_KEY_RANK.get(name, 0), natural)


def _ordered_leaves(tree: Any, prefix: tuple[str, ...] = ()):
  """Yields (path, leaf) in canonical (depth) order; dicts are the only nodes."""
  if isinstance(tree, Mapping):
    for key in sorted(tree, key=_key_order):
      yield from _ordered_leaves(tree[key], prefix + (str(key),))
  else:
    yield prefix, tree


def param_spec(params: Mapping) -> list[tuple[str, tuple[int, ...], int]]:
  """Layout of `flatten_params`' vector.

  Args:
    params: a (nested) dict of arrays, e.g. `variables['params']`.

  Returns:
    [(path, shape, offset)] in vector order, e.g. ('block_0/conv/kernel',
    (3, 3, 3, 128), 0); entry i occupies vec[offset : offset + prod(shape)].
  """
  spec, offset = [], 0
  for path, leaf in _ordered_leaves(params):
    shape = tuple(jnp.shape(leaf))
    spec.append(('/'.join(path), shape, offset))
    offset += math.prod(shape)
  return spec


def _nest(items) -> dict:
  """A nested dict from (``'a/b/c'`` path, leaf) pairs (``param_spec``'s paths)."""
  out: dict = {}
  for path, leaf in items:
    node = out
    parts = path.split('/')
    for key in parts[:-1]:
      node = node.setdefault(key, {})
    node[parts[-1]] = leaf
  return out


def flatten_params(params: Mapping) -> tuple[jax.Array, Callable[[jax.Array], dict]]:
  """Concatenates all parameters into one float32 vector, shallow to deep.

  Jit- and grad-compatible: the vector is a concatenation of ravels, and
  `unflatten` uses static slices and reshapes, so gradients flow both ways.

  Args:
    params: a (nested) dict of arrays (any dict order; see the module doc).

  Returns:
    (vec [P] float32, unflatten) where unflatten(vec) -> a nested dict with the
    structure, shapes and dtypes of `params`, and unflatten(flatten(p)) == p.
  """
  leaves = list(_ordered_leaves(params))
  spec = param_spec(params)
  dtypes = [jnp.result_type(leaf) for _, leaf in leaves]
  if leaves:
    vec = jnp.concatenate(
        [jnp.ravel(leaf).astype(jnp.float32) for _, leaf in leaves])
  else:
    vec = jnp.zeros((0,), jnp.float32)

  def unflatten(v: jax.Array) -> dict:
    return _nest((path, v[offset:offset + math.prod(shape)].reshape(shape).astype(dtype))
                 for (path, shape, offset), dtype in zip(spec, dtypes))

  return vec, unflatten


def depth_mask(params: Mapping, ratio: float) -> dict:
  """PAD's parameter selection as a 0/1 pytree shaped like ``params``.

  0 on the first ⌊ratio·P⌋ entries of ``flatten_params``' depth-ordered vector (the
  shallow layers; PAD Eq. 4, the same count as trajectory matching's ``mask_weights``),
  1 elsewhere. Built from the shapes alone (numpy constants), so ``params`` may be
  abstract (``jax.ShapeDtypeStruct`` leaves, or tracers).
  """
  spec = param_spec(params)
  k = int(ratio * sum(math.prod(shape) for _, shape, _ in spec))
  return _nest((path, (np.arange(offset, offset + math.prod(shape)) >= k)
                .astype(np.float32).reshape(shape)) for path, shape, offset in spec)


def has_batch_norm(variables: Mapping) -> bool:
  """True if the model keeps running statistics (a non-empty 'batch_stats')."""
  return bool(jax.tree_util.tree_leaves(variables.get('batch_stats', {})))


def init_model(module: nn.Module, key: jax.Array,
               image_shape: tuple[int, int, int]) -> dict:
  """Initialises a jaxdd model on a dummy [1, H, W, C] batch.

  Batch norm is initialised in eval mode, which creates the running statistics
  (mean 0, var 1) without needing a batch of 2. Traceable: `jax.vmap` over keys
  gives a stack of independent networks.

  Args:
    module: a model from `get_model`.
    key: PRNG key.
    image_shape: (H, W, C).

  Returns:
    variables: {'params': ...} plus {'batch_stats': ...} for batch-norm models.
  """
  x = jnp.zeros((1, *image_shape), jnp.float32)
  return dict(module.init(key, x, train=False))


def apply_model(module: nn.Module, variables: Mapping, x: jax.Array, *,
                train: bool = False, features: bool = False):
  """One entry point for batch-norm and other models.

  Args:
    module: a model from `get_model`.
    variables: from `init_model` (or trained).
    x: [N, H, W, C] float32 images.
    train: batch norm uses batch statistics and updates the running ones.
    features: return `(logits, {'embedding', 'layers'})` instead of logits.

  Returns:
    (out, new_variables): out as the module returns it. new_variables carries
    the updated 'batch_stats' when `train` and the model has batch norm;
    otherwise it is `variables` itself.
  """
  if train and has_batch_norm(variables):
    out, updates = module.apply(variables, x, train=True, features=features,
                                mutable=['batch_stats'])
    return out, {**variables, **updates}
  return module.apply(variables, x, train=train, features=features), variables
