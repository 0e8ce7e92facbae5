"""The two interfaces every method is made of (DESIGN.md): NamedTuples of pure functions.

A *parameterization* says what is stored and how it becomes images and labels; an
*objective* says what the decoded images must match in the real data. They never refer
to each other, so any pair composes: FreD coefficients under DM, a poster under DC.
"""

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp


class SynData(NamedTuple):
  """A decoded synthetic set.

  Attributes:
    images: float32 [N, H, W, C] in the data set's preprocessed space.
    labels: float32 [N, K]: one-hot rows for hard labels, or learned soft labels.
    extras: learned values the objective owns and the evaluation uses, e.g. MTT's
      ``syn_lr``; an empty dict for most methods.
  """
  images: jnp.ndarray
  labels: jnp.ndarray
  extras: dict


class RealBatch(NamedTuple):
  """A class-balanced real batch, class-major.

  Attributes:
    images: float32 [K, n, H, W, C]: ``n`` real images of each of the ``K`` classes.
    labels: int32 [K, n]: ``labels[c] == c``.
  """
  images: jnp.ndarray
  labels: jnp.ndarray


class Budget(NamedTuple):
  """What a synthetic set costs, in the pixels-per-dataset accounting of PoDD.

  Attributes:
    floats: the number of stored floats (images, coefficients, learned labels).
    ipc: the equivalent images per class, ``floats / (K * H * W * C)`` for the image
      part; fractional for posters.
    detail: a dict breaking ``floats`` down by stored tensor, for the results.
  """
  floats: int
  ipc: float
  detail: dict


class Parameterization(NamedTuple):
  """What is stored, and how it becomes images and labels.

  init(key, sample_real) -> params: a dict pytree. ``sample_real(m)`` returns
    (images [K*m, H, W, C], labels int [K*m]) of ``m`` real images per class,
    class-major, for initialisation. Top-level keys name the optimizer group of each
    leaf: 'labels' is optimised by the labels optimizer, everything else by the
    images one.
  decode(params) -> SynData: pure and differentiable.
  budget(params) -> Budget.
  project(params) -> params: applied by the loop after every optimizer update, e.g.
    PoDDL's and RaT-BPTT's learned labels clamped >= 0; the identity by default.

  ``sample_real(m)`` returns integer labels [K*m], or, when the objective has an
  ``init_filter`` (below), float label initialisations [K*m, K] (e.g. DATM's expert
  logits), which a parameterization that learns labels starts from.
  """
  init: Callable[..., Any]
  decode: Callable[[Any], SynData]
  budget: Callable[[Any], Budget]
  project: Callable[[Any], Any] = lambda params: params


class Objective(NamedTuple):
  """What the decoded images must match.

  prepare(dataset, config) -> ctx: once, outside jit (model functions, expert buffers,
    teacher statistics). ``ctx`` is closed over by the jitted step.
  loss(syn, real_batch, key, ctx, step, obj_state) -> (scalar, aux dict of scalars):
    pure, jit-able. ``obj_state`` is the objective's own carried state (below).
  init_extras(ctx, config) -> dict of learned scalars/arrays added to ``SynData.extras``
    (optimised with the 'extras' optimizer), e.g. MTT's step size; most objectives
    return {}.
  init_state(key, ctx) -> obj_state: a pytree the loop carries from step to step and
    checkpoints, but does not optimise: e.g. DC's network, trained on the synthetic set
    between image updates. Most objectives keep none ({}).
  update_state(obj_state, syn, real_batch, key, ctx, step) -> obj_state: called inside
    the same jitted step after the images are updated, with the *updated* synthetic
    set (held constant). This is how an objective with an inner loop (DC's
    ``outer_loop``/``inner_loop`` schedule) stays a set of pure functions.
  init_filter(ctx, images, labels) -> (keep bool [N], label_init float [N, K]), or None:
    which real images may initialise the synthetic set and the labels they start
    with (DATM: only images the experts classify correctly, labels = their logits).

  An objective may return ``aux['skip_update'] = 1`` to veto the step: the loop then
  leaves parameters and optimizer state unchanged (DATM's skip rule).
  """
  prepare: Callable[..., Any]
  loss: Callable[..., Any]
  init_extras: Callable[..., dict] = lambda ctx, config: {}
  init_state: Callable[..., Any] = lambda key, ctx: {}
  update_state: Callable[..., Any] = lambda obj_state, syn, real, key, ctx, step: obj_state
  init_filter: Callable[..., Any] | None = None
