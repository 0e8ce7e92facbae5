"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

Reference code: `DCrepo:main.py` (the loop) and `DCrepo:utils.py` (``match_loss``,
``distance_wb``, ``epoch``, ``get_loops``); docs/methods.md §1 "DC / DSA".

The loss of one image update, for the network θ that the objective carries (its state):

    L = Σ_c D(∇_θ ℓ(θ; A_ω_c(X^real_c), c),  ∇_θ ℓ(θ; A_ω_c(S_c), y_c))

    D(G^r, G^s) = Σ_layers Σ_i ( 1 − <G^r_i, G^s_i> / (‖G^r_i‖·‖G^s_i‖ + 1e-6) )

(the DC paper's layer-wise gradient-matching distance: over the output rows i of every
layer's gradient, one minus the cosine similarity). ℓ is the mean cross-entropy; the
real gradient is a constant; A_ω_c is DSA's Siamese augmentation, one draw ω_c per class
shared by the real and the synthetic images of class c (the DSA paper's matching loss),
or the identity for DC. Like
``distance_wb``, a conv kernel's gradient is one row per output channel (PyTorch's
``[out, in·kh·kw]``), a dense kernel's one row per output unit, a layer norm's
``[C, H, W]`` affine one row per channel, and 1-D tensors (biases, norm scales)
contribute nothing.

The schedule (``DCrepo:main.py``). One DCrepo iteration is a fresh network and
``outer_loop`` image updates; between two of them the network is trained ``inner_loop``
epochs on the (constant) synthetic set, and after the last one it is discarded. In
jaxdd the generic loop's step is one image update, so a run of I iterations is
``I·outer_loop`` steps; ``update_state`` is the schedule as a pure function of the step:
a fresh network after steps with ``(step + 1) % outer_loop == 0``, else the inner epochs:
plain SGD with ``lr_net`` (no momentum: DCrepo's ``optimizer_net = SGD(lr=lr_net)``;
an older DCrepo commit had momentum 0.5), minibatches of ``batch_train`` drawn from a
random permutation each epoch with a smaller last one (``DataLoader(shuffle=True)``),
per-sample DSA for DSA and none for DC, and batch norm in training mode.

Batch-norm networks (DCrepo's ``BN_flag``). Before every image update the running
statistics are updated in training mode by one forward of ``bn_per_class`` (16) real
images of each class, all classes in one batch, and both gradients are then taken with
those statistics frozen (``train=False``). jaxdd's batch norm follows PyTorch (momentum
0.1, unbiased running variance), so this is the reference's update, and the network
the state carries keeps it, as DCrepo's does. Other networks (the default ConvNet with
instance norm) have no running statistics and run with ``train=True``, as DCrepo's
``net.train()``.

Where jaxdd differs from the reference:
  * The BN statistics come from the first ``bn_per_class`` images of each class of the
    step's real batch, not from a second independent draw.
  * A fresh network is drawn from the step's key, not from the wall clock; the
    synthetic side's targets are ``syn.labels`` (soft-label cross-entropy, which is
    DCrepo's hard cross-entropy for one-hot rows), so learned labels work too.
  * The per-class real gradients run one class after another (``lax.map``: the memory
    of one class's batch) and the synthetic ones vmapped over classes.
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdd import sharding
from jaxdd.augment import dsa as dsa_lib
from jaxdd.train import batches, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib
from jaxdd import models as models_lib
from jaxdd.config_fields import boolean, positive_int, positive_num, read_section
from jaxdd.errors import ConfigError, is_int
from jaxdd.interfaces import Objective
from jaxdd.objectives import dm
from jaxdd.objectives import param_mask

# DCrepo utils.py get_loops: (outer_loop, inner_loop) per IPC, "empirically good".
DC_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
            50: (50, 10)}
EPS = 1e-6   # DCrepo distance_wb's 0.000001


def dc_loops(ipc: int, outer_loop: int = 0, inner_loop: int = 0,
             table: dict = DC_LOOPS) -> tuple[int, int]:
  """(outer_loop, inner_loop): the given ones if both are set (> 0), else ``table[ipc]``.

  Raises:
    ConfigError: neither given nor in the table.
  """
  if outer_loop > 0 and inner_loop > 0:
    return outer_loop, inner_loop
  if ipc not in table:
    raise ConfigError(f'objective.outer_loop and objective.inner_loop have no default '
                      f'for ipc {ipc} (defaults exist for ipc '
                      f'{", ".join(map(str, table))}); give both, e.g. '
                      f'ipc={ipc},outer_loop=10,inner_loop=50 in the config argument')
  return table[ipc]


# ----------------------------------------------------------------------------------
# The config.
# ----------------------------------------------------------------------------------


class DcConfig(NamedTuple):
  """The fields of ``config.objective`` for DC / DSA (defaults: DCrepo's ``main.py``).

  Attributes:
    dsa: DSA (True: Siamese augmentation in the loss, per-sample in the inner epochs)
      or DC (False).
    dsa_strategy: DSA's groups (``jaxdd.augment.dsa``).
    outer_loop, inner_loop: image updates per network, and inner epochs between two of
      them; None (either) = DCrepo's ``get_loops`` values for ``config.ipc``
      (``DC_LOOPS``), filled in by ``parse``.
    lr_net: the inner SGD's learning rate.
    batch_train: the inner epochs' minibatch size.
    bn_per_class: real images per class whose forward updates a batch-norm network's
      running statistics before every image update.
    param_mask, mask_ratio: PAD's parameter selection under DC
      (``objectives.param_mask``).
  """
  dsa: bool = False
  dsa_strategy: str = dsa_lib.DEFAULT_STRATEGY
  outer_loop: int | None = None
  inner_loop: int | None = None
  lr_net: float = 0.01
  batch_train: int = 256
  bn_per_class: int = 16
  param_mask: str = 'none'
  mask_ratio: float = 0.0


def _loop_count():
  return (lambda v: v is None or (is_int(v) and v >= 1),
          "an integer >= 1 (or absent: DCrepo's value for the ipc)")


CHECKS = {'dsa': boolean(), 'outer_loop': _loop_count(), 'inner_loop': _loop_count(),
          'lr_net': positive_num(), 'batch_train': positive_int(),
          'bn_per_class': positive_int(), **param_mask.CHECKS}
SHARED_FIELDS = ('name', 'batch_real')   # the registry's and the loop's


def parse(section: Mapping | None, ipc: int) -> DcConfig:
  """``DcConfig`` from ``config.objective``, checked, with both loops filled in.

  Raises:
    ConfigError: an unknown field, a value out of range, or no loops for ``ipc``.
  """
  cfg = read_section(section, DcConfig, 'objective', CHECKS, shared=SHARED_FIELDS)
  if cfg.dsa:
    dsa_lib.parse_strategy(cfg.dsa_strategy)
  if cfg.outer_loop is None or cfg.inner_loop is None:
    outer_loop, inner_loop = dc_loops(ipc)
    cfg = cfg._replace(outer_loop=outer_loop, inner_loop=inner_loop)
  return cfg


# ----------------------------------------------------------------------------------
# The distance.
# ----------------------------------------------------------------------------------


def _safe_norm(x: jax.Array) -> jax.Array:
  """‖x‖ over the last axis, with gradient 0 (not NaN) at x = 0, as PyTorch's norm.

  A row of the synthetic gradient is exactly zero whenever a unit is inactive on all
  of a class's synthetic images (IPC 1 makes that common); sqrt's derivative at 0
  would turn the whole image gradient into NaN.
  """
  sq = jnp.sum(x * x, axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _rows(g: jax.Array) -> jax.Array:
  """One row per output unit: Flax keeps the output axis last (HWIO conv, [in, out]
  dense, [H, W, C] layer norm), so rows are that axis; the order of the entries inside
  a row (here kh, kw, in rather than PyTorch's in, kh, kw) leaves the cosine unchanged."""
  return jnp.moveaxis(g, -1, 0).reshape(g.shape[-1], -1)


def tensor_distance(g_real: jax.Array, g_syn: jax.Array, mask=None) -> jax.Array:
  """DCrepo ``distance_wb`` of one parameter tensor's two gradients (0 for ndim ≤ 1).

  ``mask`` (0/1, the tensor's shape; PAD's selection, ``objectives.param_mask``): the
  cosines are taken over the kept entries only, and rows with no kept entry add 0.
  """
  if g_real.ndim <= 1:
    return jnp.zeros((), jnp.result_type(g_real, g_syn))
  if mask is not None:
    g_real, g_syn = g_real * mask, g_syn * mask
  r, s = _rows(g_real), _rows(g_syn)
  cos = jnp.sum(r * s, axis=-1) / (_safe_norm(r) * _safe_norm(s) + EPS)
  if mask is None:
    return jnp.sum(1.0 - cos)
  row_kept = jnp.max(_rows(jnp.asarray(mask)), axis=-1)
  return jnp.sum(row_kept * (1.0 - cos))


def gradient_distance(g_real, g_syn, masks=None) -> jax.Array:
  """DCrepo ``match_loss`` (dis_metric 'ours'): Σ over the tensors of two gradient
  pytrees with the same structure of ``tensor_distance``; ``masks``, a pytree of the
  same structure (``models.depth_mask``), restricts it to PAD's selected parameters."""
  if masks is None:
    terms = jax.tree_util.tree_map(tensor_distance, g_real, g_syn)
  else:
    terms = jax.tree_util.tree_map(tensor_distance, g_real, g_syn, masks)
  return sum(jax.tree_util.tree_leaves(terms), jnp.zeros(()))


# ----------------------------------------------------------------------------------
# The objective's functions (pure; ``make_dc`` binds the parsed config).
# ----------------------------------------------------------------------------------


def _ce(model, variables, params, x, targets, train):
  """Mean (soft-label) cross-entropy of the net on ``x``; batch stats are not kept."""
  logits, _ = models_lib.apply_model(model, {**variables, 'params': params}, x, train=train)
  return losses_lib.label_loss(logits, targets, 'ce')


def bn_statistics(model, variables, real_images, per_class: int):
  """Running statistics updated by one train-mode forward of the first ``per_class``
  real images of every class ([K, n, H, W, C]), all classes together (DCrepo BN_flag)."""
  m = min(per_class, real_images.shape[1])
  x = real_images[:, :m].reshape((-1,) + real_images.shape[2:])
  _, variables = models_lib.apply_model(model, variables, x, train=True)
  return variables


def epoch_order(key, epoch, n: int, batch: int):
  """The minibatches of one inner epoch: ``(full [n // batch, batch], last [n % batch],
  aug_key)``, consecutive slices of ``permutation(split(fold_in(key, epoch))[0], n)``
  (``train.batches.split_batches``).

  Batch ``b`` of the epoch is augmented (DSA) with ``fold_in(aug_key, b)``.
  """
  perm_key, aug_key = jax.random.split(jax.random.fold_in(key, epoch))
  full, last = batches.split_batches(jax.random.permutation(perm_key, n), batch)
  return full, last, aug_key


def dc_init_state(key, ctx) -> dict:
  """The first network θ, from ``key``."""
  return {'variables': models_lib.init_model(ctx['model'], key, ctx['image_shape'])}


def dc_loss(cfg: DcConfig, syn, real, key, ctx, step, state):
  """The gradient-matching loss of the module doc for the carried network:
  (L, {'dc': L}). ``key`` draws the classes' DSA transforms (``dm.class_dsa``)."""
  del step
  model = ctx['model']
  variables = state['variables']
  num_classes = real.images.shape[0]
  syn_images = syn.images.reshape((num_classes, -1) + syn.images.shape[1:])
  syn_targets = syn.labels.reshape((num_classes, -1, syn.labels.shape[-1]))
  real_targets = jax.nn.one_hot(real.labels, syn.labels.shape[-1], dtype=jnp.float32)
  real_images = real.images
  bn = models_lib.has_batch_norm(variables)
  if bn:
    variables = bn_statistics(model, variables, real_images, cfg.bn_per_class)
  if cfg.dsa:   # one Siamese draw per class for its real and synthetic images
    real_images, syn_images = dm.class_dsa(key, real_images, syn_images, cfg.dsa_strategy)
  params = variables['params']

  def grad_of(x, y):
    # Frozen statistics for BN nets; train mode (no difference) for the others.
    return jax.grad(_ce, argnums=2)(model, variables, params, x, y, not bn)

  g_real = jax.lax.stop_gradient(
      jax.lax.map(lambda xy: grad_of(*xy), (real_images, real_targets)))
  g_syn = jax.vmap(grad_of)(sharding.shard_rows(syn_images), syn_targets)   # classes
  ratio = param_mask.depth_ratio(cfg)   # PAD's FIEM under DC, None = off
  masks = None if ratio is None else models_lib.depth_mask(params, ratio)
  value = jnp.sum(jax.vmap(lambda r, s: gradient_distance(r, s, masks))(g_real, g_syn))
  return value, {'dc': value}


def dc_inner_epochs(model, variables, images, targets, key, cfg: DcConfig):
  """``cfg.inner_loop`` epochs of SGD on the synthetic set (DCrepo ``epoch('train')``).

  Plain SGD with ``lr_net``, minibatches of ``batch_train`` in ``epoch_order`` (the
  smaller last one kept), per-sample DSA with DSA, batch norm in training mode.

  Args:
    model, variables: the network and its variables (params and any batch stats).
    images: [N, H, W, C]; targets: [N, K] label rows.
    key: the epochs' permutations and augmentations (``epoch_order``).
    cfg: uses ``inner_loop``, ``lr_net``, ``batch_train``, ``dsa``, ``dsa_strategy``.

  Returns:
    The trained variables.
  """
  n = images.shape[0]
  batch = min(cfg.batch_train, n)
  tx = optim.sgd(cfg.lr_net)   # DCrepo: SGD(lr=lr_net), no momentum, no weight decay

  def sgd_step(state, idx, aug_key):
    x, y = images[idx], targets[idx]
    if cfg.dsa:
      x = dsa_lib.dsa(aug_key, x, strategy=cfg.dsa_strategy, siamese=False)
    state, _, _ = step_lib.supervised_step(
        model, tx, state, x, lambda logits: losses_lib.label_loss(logits, y, 'ce'))
    return state

  def epoch(state, e):
    full, last, aug_key = epoch_order(key, e, n, batch)
    state, _ = jax.lax.scan(
        lambda s, ib: (sgd_step(s, ib[1], jax.random.fold_in(aug_key, ib[0])), None),
        state, (jnp.arange(full.shape[0]), full))
    if last.shape[0]:   # DataLoader keeps the smaller last batch (static size here)
      state = sgd_step(state, last, jax.random.fold_in(aug_key, full.shape[0]))
    return state, None

  state = step_lib.TrainState(variables, tx.init(variables['params']))
  state, _ = jax.lax.scan(epoch, state, jnp.arange(cfg.inner_loop))
  return state.variables


def dc_update_state(cfg: DcConfig, syn, real, key, ctx, step, state):
  """After image update ``step``: a fresh network from ``split(key)[0]`` if it ended an
  iteration, else the inner epochs with ``split(key)[1]`` (see ``epoch_order``)."""
  model, image_shape = ctx['model'], ctx['image_shape']
  fresh_key, train_key = jax.random.split(key)

  def fresh(_):
    return {'variables': models_lib.init_model(model, fresh_key, image_shape)}

  def train(_):
    old = state['variables']
    variables = old
    if models_lib.has_batch_norm(variables):
      # The statistics the loss froze for this image update stay in the network.
      variables = bn_statistics(model, variables, real.images, cfg.bn_per_class)
    variables = dc_inner_epochs(model, variables, syn.images, syn.labels, train_key, cfg)
    # Keep the carried dtypes (float64 synthetic images would promote BN stats).
    return {'variables': step_lib.cast_like(variables, old)}

  if cfg.outer_loop == 1:   # every step ends an iteration: no inner loop to compile
    return fresh(None)
  return jax.lax.cond((step + 1) % cfg.outer_loop == 0, fresh, train, None)


def make_dc(config) -> Objective:
  """DC / DSA objective (module doc) from ``config.objective`` (``DcConfig``; the loops
  default to DCrepo's for ``config.ipc``) and ``config.model``.

  Raises:
    ConfigError: a field out of range, naming it, before anything is compiled.
  """
  cfg = parse(config.objective, config.ipc)
  return Objective(dm.prepare_model, functools.partial(dc_loss, cfg),
                   init_state=dc_init_state,
                   update_state=functools.partial(dc_update_state, cfg))
