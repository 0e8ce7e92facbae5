"""Meta-learning through unrolled training: BPTT, truncated BPTT and RaT-BPTT.

Reference: Feng, Vedantam & Kempe, "Embarassingly Simple Dataset Distillation" (ICLR
2024), code `fengyzpku/Simple_Dataset_Distillation:framework/{distill_higher,base}.py`
(docs/methods.md §1 "RaT-BPTT"); PoDD uses it as its distiller (PoDD paper §3, Eq. 2 and the
paragraph after it; `AsafShul/PoDD:src/PoDD.py`).

One loss evaluation (one meta-step) is, with S the synthetic images and Y their labels:

    θ_0 ~ fresh init;   θ_{t+1} = Opt(θ_t, ∇_θ CE(f_θ_t(A(S_{B_t})), Y_{B_t}))
    L(S, Y) = CE(f_θ_{c+w}(A(X_real)), y_real)

where B_t is a random minibatch of ``batch_syn`` synthetic images, A is per-sample DSA,
c the *curriculum* (steps without meta-gradient: the first c steps run on
``stop_gradient(S, Y)``) and w the *window* (steps backpropagated through). The gradient
is the RaT-BPTT estimate: ∂L/∂S through the last w steps only, with θ_c held constant.

The curriculum c:
  * ``truncation='random'`` (RaT-BPTT, the reference's ``cctype 2``):
    c ~ U{min_window, …, total_window − window} (both ends included, Python's
    ``random.randint``), redrawn every ``redraw_every`` steps — a pure function of the
    step: ``randint(fold_in(k, step // redraw_every))`` with a key ``k`` the objective
    keeps in its state. The reference redraws once per real-data epoch
    (``redraw_every=0`` means that: ceil(N_train / (K·batch_real)) steps), or per step
    with ``--complete_random`` (``complete_random=True``).
  * ``truncation='fixed'``: c = total_window − window (truncated BPTT; the reference's
    ``cctype 0``). With window = total_window this is full BPTT (c = 0).

The curriculum runs as a ``fori_loop`` with a traced bound (a while loop: no
meta-gradient flows through it, so it need not be reverse-differentiable, and it only
runs the drawn number of steps); the window is a ``lax.scan`` of ``jax.checkpoint``-ed
steps, so the backward pass stores one (params, optimizer state) per step rather than
every activation.

Labels: the synthetic side's loss is cross-entropy against ``syn.labels`` used as
target weights, ``-Σ_k y_k log softmax(f(x))_k``. This is PyTorch's
``CrossEntropyLoss`` with probability targets, which the reference calls on its learned
labels (clamped ≥ 0 after every step) *without* normalising them: ``label_norm='none'``
(the default) does the same. PoDD's PoDDL L1-normalises each patch's label (PoDD §4.3);
that belongs to its parameterization, and ``label_norm='l1'`` offers it here for any
parameterization.

Where jaxdd differs from the reference:
  * Inner Adam uses ``eps_root`` (default 1e-8) inside the square root: optax's adam
    notes it is needed for meta-gradients (at a zero gradient d√v/dv is infinite and the
    meta-gradient becomes NaN). The reference's ``higher`` masks that gradient instead;
    the forward differs from PyTorch's Adam only for gradient entries below ~1e-4.
  * Inner minibatches are a uniform random subset of the whole synthetic set (PoDD's
    ``get_overlapping_patches_and_labels``); RaT-BPTT draws ``batch_per_class`` per class.
  * The real batch is the loop's class-balanced one, not a shuffled-loader batch.
  * Only networks without batch norm (the reference's ConvNets use instance norm).
"""

import functools
import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdd import sharding
from jaxdd.augment import dsa as dsa_lib
from jaxdd.train import optim
from jaxdd.train import losses as losses_lib
from jaxdd import models as models_lib
from jaxdd.config_fields import (boolean, fraction, non_negative_int, non_negative_num,
                                 one_of, plain, positive_int, positive_num, read_section)
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Objective

TRUNCATIONS = ('random', 'fixed')
INNER_OPTIMS = ('adam', 'sgd')
LABEL_NORMS = ('none', 'l1')
_BN_MODELS = ('convnet_bn', 'alexnet_bn', 'vgg11_bn', 'resnet18_bn')


class BPTTConfig(NamedTuple):
  """The fields of ``config.objective`` (defaults: RaT-BPTT on CIFAR-10, docs/methods.md §1).

  Attributes:
    window: w, differentiable inner steps (60).
    total_window: T, the longest unroll (200).
    min_window: smallest curriculum of the random truncation (0).
    truncation: 'random' (RaT-BPTT) or 'fixed' (c = T − w; full BPTT when w = T).
    complete_random: redraw c at every step (the reference's ``--complete_random``).
    redraw_every: steps between redraws when not complete_random; 0 = one real epoch.
    inner_optim: 'adam' (RaT-BPTT, PoDD) or 'sgd' (momentum, coupled weight decay).
    inner_lr: inner learning rate (1e-3).
    inner_momentum, inner_weight_decay: SGD only (the reference's 0.9 and 5e-4).
    eps_root: Adam's epsilon inside the square root, > 0 (see the module doc).
    batch_syn: synthetic images per inner step; 0 = all of them, in order.
    syn_dsa, syn_dsa_strategy: per-sample DSA on the inner steps ('flip_rotate').
    real_dsa, real_dsa_strategy: per-sample DSA on the real batch ('flip_rotate').
    label_norm: 'none' (the reference) or 'l1' (targets divided by their sum).
    remat: ``jax.checkpoint`` the window's steps.
  """
  window: int = 60
  total_window: int = 200
  min_window: int = 0
  truncation: str = 'random'
  complete_random: bool = False
  redraw_every: int = 0
  inner_optim: str = 'adam'
  inner_lr: float = 1e-3
  inner_momentum: float = 0.9
  inner_weight_decay: float = 5e-4
  eps_root: float = 1e-8
  batch_syn: int = 0
  syn_dsa: bool = True
  syn_dsa_strategy: str = 'flip_rotate'
  real_dsa: bool = True
  real_dsa_strategy: str = 'flip_rotate'
  label_norm: str = 'none'
  remat: bool = True


CHECKS = {'window': positive_int(), 'total_window': positive_int(),
          'min_window': non_negative_int(), 'truncation': one_of(TRUNCATIONS),
          'complete_random': boolean(), 'redraw_every': non_negative_int(),
          'inner_optim': one_of(INNER_OPTIMS), 'inner_lr': positive_num(),
          'inner_momentum': fraction(), 'inner_weight_decay': non_negative_num(),
          'eps_root': non_negative_num(), 'batch_syn': non_negative_int(),
          'syn_dsa': boolean(), 'real_dsa': boolean(), 'label_norm': one_of(LABEL_NORMS),
          'remat': boolean()}
SHARED_FIELDS = ('name', 'batch_real')   # the registry's and the loop's (per class)


def parse(section: Mapping | None) -> BPTTConfig:
  """``BPTTConfig`` from ``config.objective`` (a dict or ConfigDict), validated.

  Raises:
    ConfigError: a field out of range, naming it and the accepted values.
  """
  cfg = read_section(section, BPTTConfig, 'objective', CHECKS, shared=SHARED_FIELDS)
  if cfg.total_window < cfg.window:
    raise ConfigError(f'objective.total_window must be an integer >= {cfg.window}, '
                      f'got {cfg.total_window!r}')
  if cfg.truncation == 'random' and cfg.min_window > cfg.total_window - cfg.window:
    raise ConfigError(f'objective.min_window must be <= total_window - window = '
                      f'{cfg.total_window - cfg.window}, got {cfg.min_window}')
  if cfg.inner_optim == 'adam' and not cfg.eps_root > 0:
    raise ConfigError(f'objective.eps_root must be > 0 for inner_optim=adam (the '
                      f'meta-gradient through Adam is NaN at a zero gradient otherwise), '
                      f'got {cfg.eps_root!r}')
  for flag, strategy in (('syn_dsa', 'syn_dsa_strategy'), ('real_dsa', 'real_dsa_strategy')):
    if getattr(cfg, flag):
      dsa_lib.parse_strategy(getattr(cfg, strategy))
  return cfg


def curriculum_bounds(cfg: BPTTConfig) -> tuple[int, int]:
  """(lowest, highest) curriculum, both included: [min_window, T − w] or the fixed one."""
  top = cfg.total_window - cfg.window
  return (cfg.min_window, top) if cfg.truncation == 'random' else (top, top)


def draw_curriculum(truncation_key: jax.Array, step, cfg: BPTTConfig,
                    redraw_every: int) -> jax.Array | int:
  """The number c of no-meta-gradient inner steps at outer step ``step``.

  RaT-BPTT's random truncation (module doc): uniform on ``curriculum_bounds(cfg)``,
  the same for all steps of one period ``step // redraw_every`` (every step when
  ``cfg.complete_random``): an int32 scalar. For ``truncation='fixed'`` (or a range of
  one value) the constant as a Python int.
  """
  lo, hi = curriculum_bounds(cfg)
  if lo == hi:   # fixed: a Python int, so c = 0 (full BPTT) compiles no curriculum loop
    return lo
  period = step if cfg.complete_random else step // redraw_every
  key = jax.random.fold_in(truncation_key, period)
  return jax.random.randint(key, (), lo, hi + 1, dtype=jnp.int32)


def inner_optimizer(cfg: BPTTConfig) -> optax.GradientTransformation:
  """The network's optimizer: Adam(lr, eps_root) or PyTorch-style SGD (coupled decay)."""
  if cfg.inner_optim == 'adam':
    return optim.adam(cfg.inner_lr, eps_root=cfg.eps_root)
  return optim.sgd(cfg.inner_lr, momentum=cfg.inner_momentum,
                   weight_decay=cfg.inner_weight_decay)


def normalize_targets(labels: jax.Array, label_norm: str) -> jax.Array:
  """[N, K] targets of the inner loss: as stored ('none') or divided by their sum ('l1')."""
  if label_norm == 'l1':
    return labels / jnp.maximum(jnp.sum(labels, axis=-1, keepdims=True), 1e-12)
  return labels


def syn_batch(key, images, targets, cfg: BPTTConfig):
  """One inner step's minibatch: a uniform random subset of ``batch_syn`` (PoDD) images
  (all, in order, if ``batch_syn`` is 0 or ≥ N) with per-sample DSA if ``syn_dsa``.

  Returns (x [B, H, W, C], y [B, K]).
  """
  n = images.shape[0]
  sel_key, aug_key = jax.random.split(key)
  if 0 < cfg.batch_syn < n:
    idx = jax.random.permutation(sel_key, n)[:cfg.batch_syn]
    images, targets = images[idx], targets[idx]
  if cfg.syn_dsa:
    images = dsa_lib.dsa(aug_key, images, strategy=cfg.syn_dsa_strategy, siamese=False)
  return images, targets


def make_inner_step(model, rest, tx, images, targets, cfg: BPTTConfig):
  """``step((params, opt_state), key) -> ((params, opt_state), loss)``: one optimizer
  step of the network on ``syn_batch(key, ...)``; ``rest`` holds the non-'params'
  collections of the network's variables (empty for the supported nets)."""

  def step(carry, key):
    params, opt_state = carry
    x, y = syn_batch(key, images, targets, cfg)
    x = sharding.shard_rows(x)   # the inner minibatch over the devices

    def ce(p):
      logits, _ = models_lib.apply_model(model, {**rest, 'params': p}, x, train=True)
      return losses_lib.label_loss(logits, y, 'ce')

    loss, grads = jax.value_and_grad(ce)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return step


def unrolled_loss(model, variables, syn_images, syn_targets, real_x, real_targets, key,
                  curriculum, cfg: BPTTConfig):
  """The meta-loss L(S, Y) of the module doc for one network, and the last inner loss.

  Args:
    model: a Flax module without batch norm.
    variables: the network's initial variables (cast to the images' dtype here).
    syn_images: [N, H, W, C]; syn_targets: [N, K] (already ``normalize_targets``-ed).
    real_x: [M, H, W, C] real images; real_targets: [M, K] one-hot.
    key: inner step t of the curriculum uses ``fold_in(k_c, t)``, window step i
      ``fold_in(k_w, i)``, the real DSA ``k_r``, with ``k_c, k_w, k_r = split(key, 3)``.
    curriculum: c, an int32 scalar (traced) or a Python int.
    cfg: the objective's settings (``window`` steps are differentiated).

  Returns:
    (meta-loss scalar, last window step's inner loss).
  """
  dtype = jnp.result_type(syn_images)
  cast = lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p
  variables = jax.tree_util.tree_map(cast, variables)
  params = variables['params']
  rest = {k: v for k, v in variables.items() if k != 'params'}
  tx = inner_optimizer(cfg)
  curr_key, win_key, real_key = jax.random.split(key, 3)

  # The curriculum: no meta-gradient (Eq. 2 of PoDD truncated to the last w steps).
  frozen = make_inner_step(model, rest, tx, jax.lax.stop_gradient(syn_images),
                           jax.lax.stop_gradient(syn_targets), cfg)
  carry = (params, tx.init(params))
  if not (isinstance(curriculum, int) and curriculum == 0):
    carry = jax.lax.fori_loop(
        0, curriculum, lambda t, c: frozen(c, jax.random.fold_in(curr_key, t))[0], carry)
    carry = jax.lax.stop_gradient(carry)

  # The window: differentiated, each step rematerialised in the backward pass.
  step = make_inner_step(model, rest, tx, syn_images, syn_targets, cfg)
  if cfg.remat:
    step = jax.checkpoint(step)
  keys = jax.vmap(lambda i: jax.random.fold_in(win_key, i))(jnp.arange(cfg.window))
  (params, _), inner_losses = jax.lax.scan(step, carry, keys)

  if cfg.real_dsa:
    real_x = dsa_lib.dsa(real_key, real_x, strategy=cfg.real_dsa_strategy, siamese=False)
  real_x = sharding.shard_rows(real_x)   # the outer loss's real batch over the devices
  logits, _ = models_lib.apply_model(model, {**rest, 'params': params}, real_x, train=True)
  return losses_lib.label_loss(logits, real_targets, 'ce'), inner_losses[-1]


def check_model_config(model_section) -> None:
  """Refuses a batch-norm ``config.model`` by its name or norm, before compiling."""
  model = plain(model_section)
  name, norm = model.get('name'), model.get('norm')
  if name in _BN_MODELS or norm == 'batchnorm':
    raise ConfigError(f'objective bptt does not support batch norm (model.name={name!r}, '
                      f'model.norm={norm!r}); use a model without '
                      f'it, e.g. model.name=convnet (instance norm), as RaT-BPTT does')


def bptt_prepare(cfg: BPTTConfig, ds, config) -> dict:
  """ctx: the network of ``config.model`` (refused with running statistics) and the
  steps between curriculum redraws (``redraw_every``, or one real epoch when 0)."""
  image_shape = tuple(ds.x_train.shape[1:])
  model = models_lib.from_config(config.model, ds.num_classes, image_shape)
  shapes = jax.eval_shape(lambda k: models_lib.init_model(model, k, image_shape),
                          jax.random.key(0))
  if models_lib.has_batch_norm(shapes):
    raise ConfigError(f'objective bptt does not support batch norm, but model '
                      f'{config.model.name!r} has running statistics')
  redraw = cfg.redraw_every
  if redraw == 0:   # one pass over the real data, as the reference's epoch loop
    per_step = ds.num_classes * int(config.objective.batch_real)
    redraw = max(1, math.ceil(ds.x_train.shape[0] / per_step))
  return {'model': model, 'image_shape': image_shape, 'redraw_every': redraw}


def bptt_init_state(key, ctx) -> dict:
  """The truncation key, as raw uint32 key data so that it checkpoints."""
  del ctx
  return {'truncation_key': jax.random.key_data(key)}


def bptt_loss(cfg: BPTTConfig, syn, real, key, ctx, step, state):
  """The meta-loss of one fresh network (``split(key)[0]``) unrolled with
  ``split(key)[1]``: (L, {'bptt', 'inner_loss', 'curriculum'})."""
  model = ctx['model']
  num_classes = syn.labels.shape[-1]
  init_key, unroll_key = jax.random.split(key)
  variables = models_lib.init_model(model, init_key, ctx['image_shape'])
  trunc_key = jax.random.wrap_key_data(state['truncation_key'])
  curriculum = draw_curriculum(trunc_key, step, cfg, ctx['redraw_every'])
  real_x = real.images.reshape((-1,) + real.images.shape[2:])
  real_targets = jax.nn.one_hot(real.labels.reshape(-1), num_classes, dtype=real_x.dtype)
  targets = normalize_targets(syn.labels, cfg.label_norm)
  value, inner = unrolled_loss(model, variables, syn.images, targets, real_x,
                               real_targets, unroll_key, curriculum, cfg)
  return value, {'bptt': value, 'inner_loss': inner,
                 'curriculum': jnp.asarray(curriculum, jnp.float32)}


def make_bptt(config) -> Objective:
  """BPTT / truncated BPTT / RaT-BPTT objective (module doc).

  Reads ``config.objective`` (see ``BPTTConfig``; ``batch_real`` is the loop's, per
  class) and ``config.model``. The objective's state is the truncation key (raw uint32
  key data, so it checkpoints).

  Raises:
    ConfigError: a field out of range or a batch-norm model, before any compilation.
  """
  cfg = parse(config.objective)
  check_model_config(config.model)
  return Objective(functools.partial(bptt_prepare, cfg),
                   functools.partial(bptt_loss, cfg), init_state=bptt_init_state)
