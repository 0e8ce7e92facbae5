"""The two interfaces every method is made of (docs/design.md): NamedTuples of pure functions.

A *parameterization* says what is stored and how it becomes images and labels; an
*objective* says what the decoded images must match in the real data. They never refer
to each other, so any pair composes: FreD coefficients under DM, a poster under DC.

Every function of both is typed by a ``Protocol`` below. One argument order holds for
the two functions the loop calls inside its jitted step, the objective's ``loss`` and
``update_state``: ``(syn, real, key, ctx, step, state)``, the synthetic set first (what
the step differentiates or has just updated), the objective's carried state last.
"""

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

# What ``prepare`` builds once outside jit (models, expert buffers, kernels) and the
# jitted step closes over; and the objective's carried state (a pytree).
Ctx = Any
ObjState = Any
# A parameterization's stored values: a dict pytree whose top-level keys name the
# optimizer group of each leaf ('labels' -> the labels optimizer, else the images one).
Params = dict
# sample_real(m) -> (images [K*m, H, W, C], labels int [K*m] or float [K*m, K]).
SampleReal = Callable[[int], tuple[Any, Any]]


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


# ----------------------------------------------------------------------------------
# The parameterization's functions.
# ----------------------------------------------------------------------------------


class InitFn(Protocol):
  """init(key, sample_real) -> params, once, outside jit.

  ``sample_real(m)`` returns ``m`` real images per class, class-major, and their
  labels: integers [K*m], or, when the objective has an ``init_filter``, float label
  initialisations [K*m, K] (e.g. DATM's expert logits), which a parameterization that
  learns labels starts from.
  """

  def __call__(self, key: jax.Array, sample_real: SampleReal) -> Params: ...


class DecodeFn(Protocol):
  """decode(params) -> SynData: pure and differentiable."""

  def __call__(self, params: Params) -> SynData: ...


class BudgetFn(Protocol):
  """budget(params) -> Budget: what the stored set costs."""

  def __call__(self, params: Params) -> Budget: ...


class ProjectFn(Protocol):
  """project(params) -> params, applied by the loop after every optimizer update."""

  def __call__(self, params: Params) -> Params: ...


def _identity(params: Params) -> Params:
  return params


class Parameterization(NamedTuple):
  """What is stored, and how it becomes images and labels.

  init: ``InitFn``. decode: ``DecodeFn``. budget: ``BudgetFn``.
  project: ``ProjectFn``, e.g. PoDDL's and RaT-BPTT's learned labels clamped >= 0; the
    identity by default.
  """
  init: InitFn
  decode: DecodeFn
  budget: BudgetFn
  project: ProjectFn = _identity


# ----------------------------------------------------------------------------------
# The objective's functions.
# ----------------------------------------------------------------------------------


class PrepareFn(Protocol):
  """prepare(dataset, config) -> ctx: once, outside jit (model functions, expert
  buffers, teacher statistics). ``ctx`` is closed over by the jitted step."""

  def __call__(self, ds: Any, config: Any) -> Ctx: ...


class LossFn(Protocol):
  """loss(syn, real, key, ctx, step, state) -> (scalar, aux dict of scalars).

  Pure and jit-able; ``state`` is the objective's own carried state (``InitStateFn``).
  An objective may return ``aux['skip_update'] = 1`` to veto the step: the loop then
  leaves parameters and optimizer state unchanged (DATM's skip rule).
  """

  def __call__(self, syn: SynData, real: RealBatch, key: jax.Array, ctx: Ctx,
               step: jax.Array, state: ObjState) -> tuple[jax.Array, dict]: ...


class InitStateFn(Protocol):
  """init_state(key, ctx) -> state: a pytree the loop carries from step to step and
  checkpoints, but does not optimise: e.g. DC's network, trained on the synthetic set
  between image updates. Most objectives keep none ({})."""

  def __call__(self, key: jax.Array, ctx: Ctx) -> ObjState: ...


class UpdateStateFn(Protocol):
  """update_state(syn, real, key, ctx, step, state) -> state, the order of ``LossFn``.

  Called inside the same jitted step after the images are updated, with the *updated*
  synthetic set (held constant). This is how an objective with an inner loop (DC's
  ``outer_loop``/``inner_loop`` schedule) stays a set of pure functions.
  """

  def __call__(self, syn: SynData, real: RealBatch, key: jax.Array, ctx: Ctx,
               step: jax.Array, state: ObjState) -> ObjState: ...


class InitExtrasFn(Protocol):
  """init_extras(ctx, config) -> dict of learned scalars/arrays added to
  ``SynData.extras`` (optimised with the 'extras' optimizer), e.g. MTT's step size."""

  def __call__(self, ctx: Ctx, config: Any) -> dict: ...


class InitFilterFn(Protocol):
  """init_filter(ctx, images, labels) -> (keep bool [N], label_init float [N, K]).

  Which real images may initialise the synthetic set and the labels they start with
  (DATM: only images the experts classify correctly, labels = their logits).
  """

  def __call__(self, ctx: Ctx, images: jax.Array,
               labels: jax.Array) -> tuple[jax.Array, jax.Array]: ...


def no_extras(ctx: Ctx, config: Any) -> dict:
  """The default ``InitExtrasFn``: nothing learned besides the parameterization."""
  del ctx, config
  return {}


def no_state(key: jax.Array, ctx: Ctx) -> ObjState:
  """The default ``InitStateFn``: no carried state."""
  del key, ctx
  return {}


def keep_state(syn: SynData, real: RealBatch, key: jax.Array, ctx: Ctx, step: jax.Array,
               state: ObjState) -> ObjState:
  """The default ``UpdateStateFn``: the state as it is."""
  del syn, real, key, ctx, step
  return state


class Objective(NamedTuple):
  """What the decoded images must match.

  prepare: ``PrepareFn``. loss: ``LossFn``. init_extras: ``InitExtrasFn`` (most
  objectives: none). init_state: ``InitStateFn`` and update_state: ``UpdateStateFn``
  (most objectives: no state). init_filter: ``InitFilterFn`` or None.
  """
  prepare: PrepareFn
  loss: LossFn
  init_extras: InitExtrasFn = no_extras
  init_state: InitStateFn = no_state
  update_state: UpdateStateFn = keep_state
  init_filter: InitFilterFn | None = None
