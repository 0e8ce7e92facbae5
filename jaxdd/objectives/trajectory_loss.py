"""Trajectory matching: MTT (Cazenavette et al., CVPR 2022), DATM (Guo et al., ICLR 2024)
and PAD's parameter masking (Li et al.; papers/003 §3.1, §3.3; docs/methods.md §1 MTT, DATM,
§2 PAD).

One objective, three methods by options. Each step draws an expert e ~ U[0, E) and a
start epoch t ~ U[t_min, t_max(step)) from a buffer of expert trajectories (flat
parameter vectors, shallow to deep), starts a student at θ̂_0 = θ*_{e,t}, takes
``syn_steps`` plain-SGD steps on the synthetic set (PAD Eq. 1)

    θ̂_{i+1} = θ̂_i − α · ∇_θ ℓ(f_θ̂_i(A(x_{B_i})), y_{B_i}),     α = syn_lr (learned)

and matches the expert ``expert_epochs`` (M) epochs later (PAD Eq. 2, squared as in the
code of all three methods):

    L = Σ_{j∈J} (θ̂_N − θ*_{t+M})_j² / Σ_{j∈J} (θ*_t − θ*_{t+M})_j²

J is every entry, or PAD's selection (``param_mask``, both terms use the same J):
  * 'depth' (the paper, Eq. 4; historical ``PAD_depth.py``): J drops the first
    k = ⌊mask_ratio·P⌋ entries of the depth-ordered vector, the shallow layers.
  * 'smallest_error' (the released ``PAD.py``): J drops the k entries with the
    smallest (θ̂_N − θ*_{t+M})², i.e. keeps the worst-matched ones; the denominator
    sums the start distance over the same kept entries, as that code does.

Minibatches B_i follow MTT: a fresh random permutation of the synthetic set split into
chunks of ``batch_syn`` (the last one smaller), consumed from the last chunk (MTT's
``list.pop()``), a new permutation when they run out. Shapes must be static, so a
smaller chunk is padded and its padding weighted 0 in the mean loss (identical loss;
only a batch-norm student would see the padding in its batch statistics). A is DSA with
parameters drawn per sample (MTT's unseeded ``DiffAugment``), or the identity.

DATM's additions are options: the soft-label loss −Σ softmax(y)·log_softmax(f) of
learned logits (``label_loss='soft_ce'``); sequential generation, the start window's
upper end rising from ``max_start_epoch_initial`` to ``max_start_epoch`` by
``expansion_end_step`` (``start_window``); the skip rule (no update at all when the
loss exceeds ``threshold``), reported as ``aux['skip_update']`` for the loop to honour;
and the soft-label initialisation ``expert_label_init``
(``jaxdd.objectives.trajectory_matching``, the objective built from a config; this
module is its loss).

Where jaxdd differs from the authors' code:
  * syn_lr is used as it is, not clamped (the authors neither clamp nor
    reparameterise it; a negative value is possible in principle, never observed).
  * Experts are drawn uniformly from a device-resident buffer (MTT's ``load_all``);
    the default MTT code walks shuffled buffer files expert by expert.
  * The unroll is a ``lax.scan`` with a rematerialisation policy (``checkpoint``)
    instead of keeping every step's graph, as the PyTorch code must.
"""

import math
from collections.abc import Mapping
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdd import sharding
from jaxdd.augment import dsa as dsa_lib
from jaxdd.train import losses as losses_lib
from jaxdd.config_fields import (boolean, fraction, non_negative_int, non_negative_num,
                                 one_of, positive_int, positive_num, read_section)
from jaxdd.errors import ConfigError

CHECKPOINTS = ('none', 'step', 'nested')
PARAM_MASKS = ('none', 'depth', 'smallest_error')
LABEL_LOSSES = ('ce', 'soft_ce')

# A student: apply(theta [P], images [n, H, W, C]) -> logits [n, K].
ApplyFn = Callable[[jax.Array, jax.Array], jax.Array]


class MTTConfig(NamedTuple):
  """The fields of ``config.objective`` for trajectory matching (MTT's argparse).

  ``max_start_epoch_initial`` and ``expansion_end_step`` are DATM's
  ``current_max_start_epoch`` and ``expansion_end_epoch`` (counted in distillation
  steps); ``expansion_end_step=0`` turns sequential generation off. ``batch_syn=0`` is
  the whole set; ``threshold=0`` turns the skip rule off. ``grad_chunks`` > 1 computes
  each student step's gradient as the sum over that many equal sub-batches, each
  rematerialised (``unroll``): the same loss and meta-gradient (up to float summation
  order) for a per-sample student (instance norm), at 1/grad_chunks of one step's
  activation memory; a batch-norm student would normalise per sub-batch, so
  ``jaxdd.objectives.trajectory_matching`` refuses it. ``init_from_experts`` is DATM's
  initialisation (``trajectory_matching.expert_label_init``), not used by the loss.
  """
  syn_steps: int = 20
  expert_epochs: int = 3
  max_start_epoch: int = 25
  min_start_epoch: int = 0
  max_start_epoch_initial: int = 0
  expansion_end_step: int = 0
  batch_syn: int = 0
  dsa: bool = True
  dsa_strategy: str = dsa_lib.DEFAULT_STRATEGY
  lr_teacher: float = 0.01
  label_loss: str = 'ce'
  threshold: float = 0.0
  param_mask: str = 'none'
  mask_ratio: float = 0.0
  checkpoint: str = 'step'
  grad_chunks: int = 1
  init_from_experts: bool = False


CHECKS = {'syn_steps': positive_int(), 'expert_epochs': positive_int(),
          'max_start_epoch': positive_int(), 'min_start_epoch': non_negative_int(),
          'max_start_epoch_initial': non_negative_int(),
          'expansion_end_step': non_negative_int(), 'batch_syn': non_negative_int(),
          'dsa': boolean(), 'lr_teacher': positive_num(),
          'label_loss': one_of(LABEL_LOSSES),
          'threshold': (non_negative_num()[0], 'a number >= 0 (0 = off)'),
          'param_mask': one_of(PARAM_MASKS), 'mask_ratio': fraction(),
          'checkpoint': one_of(CHECKPOINTS), 'grad_chunks': positive_int(),
          'init_from_experts': boolean()}
# The registry's name, the loop's batch_real, and the expert buffer's sections, read by
# ``trajectory_matching``.
SHARED_FIELDS = ('name', 'batch_real', 'experts', 'pad')


def parse(section: Mapping | None) -> MTTConfig:
  """``MTTConfig`` from ``config.objective`` (a ConfigDict or dict), checked.

  Raises:
    ConfigError: naming ``objective.<field>`` and the accepted values.
  """
  cfg = read_section(section, MTTConfig, 'objective', CHECKS, shared=SHARED_FIELDS)
  if cfg.min_start_epoch >= cfg.max_start_epoch:
    raise ConfigError(f'objective.min_start_epoch must be < objective.max_start_epoch '
                      f'({cfg.max_start_epoch}), got {cfg.min_start_epoch}')
  if cfg.expansion_end_step > 0 and not (
      cfg.min_start_epoch < cfg.max_start_epoch_initial <= cfg.max_start_epoch):
    raise ConfigError(
        'objective.max_start_epoch_initial must satisfy objective.min_start_epoch '
        f'({cfg.min_start_epoch}) < it <= objective.max_start_epoch '
        f'({cfg.max_start_epoch}) when objective.expansion_end_step > 0, got '
        f'{cfg.max_start_epoch_initial!r}')
  if cfg.dsa:
    try:
      dsa_lib.parse_strategy(cfg.dsa_strategy)
    except ConfigError as e:
      raise ConfigError(f'objective.{e}') from None
  return cfg


def check_buffer(trajectories_shape, cfg: MTTConfig) -> None:
  """Raises ConfigError when the window cannot fit the buffer [E, T+1, P]."""
  last = trajectories_shape[1] - 1
  if cfg.max_start_epoch - 1 + cfg.expert_epochs > last:
    raise ConfigError(
        f'objective.max_start_epoch ({cfg.max_start_epoch}) - 1 + '
        f'objective.expert_epochs ({cfg.expert_epochs}) must be <= the experts\' '
        f'last epoch ({last})')


# ----------------------------------------------------------------------------------
# Schedules: the start window and the minibatches (pure functions of step and key).
# ----------------------------------------------------------------------------------


def start_window(step, cfg: MTTConfig):
  """[low, high) of the start epoch at distillation ``step`` (DATM sequential generation).

  high = min(initial + ⌊(max − initial)·step / expansion_end_step⌋, max) when
  ``expansion_end_step > 0`` (DATM.py's ``Upper_Bound``), else ``max_start_epoch``.
  Returns int32 scalars.
  """
  low = jnp.int32(cfg.min_start_epoch)
  if cfg.expansion_end_step <= 0:
    return low, jnp.int32(cfg.max_start_epoch)
  init, top = cfg.max_start_epoch_initial, cfg.max_start_epoch
  rise = ((top - init) * jnp.asarray(step, jnp.int32)) // cfg.expansion_end_step
  return low, jnp.minimum(init + rise, top).astype(jnp.int32)


def minibatch_schedule(key, n: int, batch: int, steps: int):
  """MTT's minibatches for ``steps`` student steps over a set of ``n`` images.

  Permutation ``e`` is ``permutation(fold_in(key, e), n)``, split into ⌈n/batch⌉
  chunks of ``batch`` (the last one smaller) and consumed last chunk first.

  Returns:
    idx int32 [steps, batch] and weight [steps, batch]: 1/|chunk| on the chunk's
    images, 0 on the padding of a smaller chunk (the weighted sum is the chunk mean).
  """
  chunks = -(-n // batch)
  epochs = -(-steps // chunks)
  perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(
      jnp.arange(epochs))
  s = jnp.arange(steps)
  chunk = chunks - 1 - s % chunks                      # list.pop() takes the last chunk
  pos = chunk[:, None] * batch + jnp.arange(batch)[None]
  idx = perms[(s // chunks)[:, None], jnp.minimum(pos, n - 1)]
  size = jnp.minimum(batch, n - chunk * batch)
  weight = (pos < n) / size[:, None].astype(jnp.float32)
  return idx.astype(jnp.int32), weight


# ----------------------------------------------------------------------------------
# The student unroll and the matching ratio.
# ----------------------------------------------------------------------------------


def unroll(theta0, syn_lr, images, targets, idx, weight, aug_keys, apply_fn: ApplyFn,
           cfg: MTTConfig):
  """θ̂_N after ``len(idx)`` SGD steps from ``theta0`` (PAD Eq. 1), differentiable.

  Args:
    theta0: [P] start parameters. syn_lr: scalar step size.
    images: [N, H, W, C]; targets: [N, K] (one-hot, probabilities or DATM logits).
    idx, weight: [S, b] from ``minibatch_schedule``; aug_keys: [S] keys for DSA.
    apply_fn: the student, ``apply(theta, x) -> logits``.
    cfg: uses ``dsa``, ``dsa_strategy``, ``label_loss``, ``checkpoint``.

  ``checkpoint``: 'none' keeps every step's residuals (memory ∝ S × one step's
  activations); 'step' wraps each step in ``jax.checkpoint`` (keeps only the S
  carries θ̂_i, recomputes one step at a time: S·P + one step); 'nested' scans
  ≈√S checkpointed segments of ≈√S checkpointed steps (keeps ≈2√S carries: 2√S·P +
  one step, for one more forward pass). With a ConvNet, P is small next to one step's
  activations, so 'step' and 'nested' differ little until S·P dominates; then
  ``grad_chunks`` divides the "one step" term (MTTConfig).
  """
  kind = cfg.label_loss

  def sample_losses(logits, y):   # per-sample label_loss, so padding can be weighted 0
    return jax.vmap(lambda z, t: losses_lib.label_loss(z[None], t[None], kind))(logits, y)

  def batch_grad(theta, x, y, w):
    return jax.grad(lambda th: jnp.sum(w * sample_losses(apply_fn(th, x), y)))(theta)

  def chunk_grad(theta, x, y, w):
    # The minibatch's gradient as the sum of ``grad_chunks`` sub-batch gradients (the
    # loss is a weighted sum over samples), each rematerialised: the meta-backward then
    # holds one sub-batch's activations at a time.
    c = cfg.grad_chunks
    # Each chunk's rows over the devices (left to XLA, the split would land on the
    # chunk axis: 2 devices busy of 8).
    split = lambda a: sharding.shard_rows(a.reshape((c, a.shape[0] // c) + a.shape[1:]),
                                          axis=1)

    def add(g, chunk):
      return g + batch_grad(theta, *chunk), None

    add = jax.checkpoint(add, prevent_cse=False)
    return jax.lax.scan(add, jnp.zeros_like(theta), (split(x), split(y), split(w)))[0]

  def step(theta, xs):
    i, w, k = xs
    x, y = sharding.shard_rows(images[i]), targets[i]   # the minibatch over devices
    if cfg.dsa:
      x = dsa_lib.dsa(k, x, strategy=cfg.dsa_strategy, siamese=False)
    grad = (batch_grad if cfg.grad_chunks == 1 else chunk_grad)(theta, x, y, w)
    return theta - syn_lr * grad, None

  xs = (idx, weight, aug_keys)
  if cfg.checkpoint == 'none':
    return jax.lax.scan(step, theta0, xs)[0]
  step = jax.checkpoint(step, prevent_cse=False)   # inside scan CSE cannot bite
  if cfg.checkpoint == 'step':
    return jax.lax.scan(step, theta0, xs)[0]

  def segment(theta, seg_xs):
    return jax.lax.scan(step, theta, seg_xs)[0], None

  segment = jax.checkpoint(segment, prevent_cse=False)
  total = idx.shape[0]
  length = math.ceil(math.sqrt(total))
  count = total // length
  head = jax.tree_util.tree_map(
      lambda a: a[:count * length].reshape((count, length) + a.shape[1:]), xs)
  theta = jax.lax.scan(segment, theta0, head)[0]
  if total > count * length:                      # the shorter last segment
    theta = segment(theta, jax.tree_util.tree_map(lambda a: a[count * length:], xs))[0]
  return theta


def mask_weights(err, param_mask: str, mask_ratio: float):
  """0/1 weights [P] of the entries J that the ratio sums (PAD's parameter selection).

  'none': all; 'depth': all but the first ⌊mask_ratio·P⌋ (paper Eq. 4); 'smallest_error':
  all but the ⌊mask_ratio·P⌋ smallest ``err`` (released PAD.py). Not differentiable in
  ``err`` (a selection), as the authors' ``torch.sort`` indices are not.
  """
  p = err.shape[0]
  k = int(mask_ratio * p)
  if param_mask == 'none' or k == 0:
    return jnp.ones((p,), err.dtype)
  if param_mask == 'depth':
    return (jnp.arange(p) >= k).astype(err.dtype)
  if param_mask == 'smallest_error':
    order = jnp.argsort(jax.lax.stop_gradient(err), stable=True)
    return jnp.zeros((p,), err.dtype).at[order[k:]].set(1)
  raise ConfigError(f'objective.param_mask must be one of {", ".join(PARAM_MASKS)}, '
                    f'got {param_mask!r}')


def matching_ratio(theta_n, start, target, param_mask: str = 'none',
                   mask_ratio: float = 0.0):
  """Σ_J (θ̂_N − θ*_{t+M})² / Σ_J (θ*_t − θ*_{t+M})² (MTT/DATM/PAD; module doc).

  All inputs [P]. MTT divides both sums by P first, which cancels.
  """
  err = (theta_n - target) ** 2
  dist = (start - target) ** 2
  keep = mask_weights(err, param_mask, mask_ratio)
  return jnp.sum(keep * err) / jnp.sum(keep * dist)


def trajectory_loss(syn, key, trajectories, apply_fn: ApplyFn, step, cfg: MTTConfig):
  """The MTT/DATM/PAD loss of one distillation step (module doc), pure and jit-able.

  Args:
    syn: SynData; images [N, H, W, C], labels [N, K], extras['syn_lr'] scalar.
    key: PRNG key of this step (expert, start epoch, minibatches, DSA).
    trajectories: [E, T+1, P] expert parameters, index 0 = initialisation.
    apply_fn: the student, ``apply(theta [P], x) -> logits``.
    step: the distillation step (DATM's start window).
    cfg: MTTConfig.

  Returns:
    (loss, aux) with aux = {'mtt': loss, 'start_epoch', 'syn_lr', 'skip_update'}
    (skip_update = 1.0 when ``threshold > 0`` and loss > threshold: DATM's rule).
  """
  expert_key, start_key, batch_key, aug_key = jax.random.split(key, 4)
  e = jax.random.randint(expert_key, (), 0, trajectories.shape[0])
  low, high = start_window(step, cfg)
  t = jax.random.randint(start_key, (), low, high)
  traj = jax.lax.stop_gradient(trajectories)
  start, target = traj[e, t], traj[e, t + cfg.expert_epochs]
  n = syn.images.shape[0]
  batch = n if cfg.batch_syn <= 0 else min(cfg.batch_syn, n)
  if batch % cfg.grad_chunks:   # shapes are static: raised while tracing
    raise ConfigError(
        f'objective.grad_chunks ({cfg.grad_chunks}) must divide the student batch '
        f'({batch}: objective.batch_syn, or all {n} synthetic images when it is 0)')
  idx, weight = minibatch_schedule(batch_key, n, batch, cfg.syn_steps)
  aug_keys = jax.random.split(aug_key, cfg.syn_steps)
  syn_lr = syn.extras['syn_lr']
  theta_n = unroll(start, syn_lr, syn.images, syn.labels, idx, weight.astype(start.dtype),
                   aug_keys, apply_fn, cfg)
  value = matching_ratio(theta_n, start, target, cfg.param_mask, cfg.mask_ratio)
  skip = (cfg.threshold > 0) & (value > cfg.threshold)
  aux = {'mtt': value, 'start_epoch': t.astype(jnp.float32),
         'syn_lr': jnp.asarray(syn_lr, jnp.float32), 'skip_update': skip.astype(jnp.float32)}
  return value, aux
