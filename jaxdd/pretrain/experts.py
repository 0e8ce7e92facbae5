"""Expert trajectories for trajectory matching (MTT, DATM, PAD): training them all at once.

An expert is a network trained on the *real* data; its trajectory is its flat
parameter vector (shallow to deep) at the start and after every epoch. MTT's student
starts from ``expert[t]`` and is matched to ``expert[t + M]``. The ``ExpertConfig``
defaults are MTT's (docs/methods.md §1 MTT "Experts", ``mtt:buffer.py``): plain SGD lr
0.01, no momentum, no weight decay, batch 256, cross-entropy, per-sample DSA on every
batch, a checkpoint every epoch including the initialisation. PAD (docs/methods.md §2)
trains on a per-epoch subset chosen by ``jaxdd.pretrain.difficulty.pad_schedule``: pass
it as ``schedule``. Storage and the cache of trained buffers are in
``jaxdd.pretrain.expert_store``.

Differences from the reference, on purpose:

  * **GSAM is not implemented.** DATM and PAD train their experts with FTD's GSAM
    (docs/methods.md §1 DATM point 1); plain SGD is the documented substitute here.
  * All experts train at once in one compiled program (``train.members.over_members``:
    ``lax.map`` on the CPU, ``vmap`` on accelerators), not 10 per process.
  * The DSA *group* of a step (crop, scale, ...) comes from a key shared by all
    experts, so that under ``vmap`` only that group is computed (as in ``evaluate``);
    transform parameters, init and data order are each expert's own. In MTT every
    expert draws its own group.
  * The last batch of an epoch is smaller, as PyTorch's ``drop_last=False``; shapes
    stay static by masking (``train.batches.masked_batch``: every step gathers
    ``batch_size`` rows, the loss is the mean over the valid ones; padded rows change
    nothing without batch norm).
  * Epochs of different sizes (PAD) do not recompile: the jitted epoch takes the
    allowed indices padded to ``N`` plus their count, and runs ``ceil(count /
    batch)`` steps in a ``fori_loop`` with a dynamic trip count.

The step, the shuffle, the optimizer and the keys are ``jaxdd.train``'s; this module
records the trajectories and takes PAD's schedule.

Keys (the contract the tests check): expert ``i`` uses ``k_i = fold_in(key(seed),
i)`` (``train.members.member_key``); ``init, data, aug = split(k_i, 3)``; epoch ``e``
shuffles with ``fold_in(data, e)``; its step ``j`` augments with ``fold_in(fold_in(aug,
e), j)`` and picks the group with ``fold_in(fold_in(choice, e), j)``, ``choice =
fold_in(key(seed), 2**30)``.
"""

import functools
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import config_fields as cf
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.augment import dsa as dsa_lib
from jaxdd.errors import ConfigError, DataError, is_int
from jaxdd.train import batches, members, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib

_CHOICE_FOLD = 1 << 30  # fold_in index of the shared DSA-group key
SECTION = 'objective.experts'   # config errors name SECTION.<field>


class ExpertConfig(NamedTuple):
  """How experts are trained (defaults: MTT's ``buffer.py``, docs/methods.md §1 MTT).

  Attributes:
    num_experts: networks trained (MTT: 100).
    epochs: epochs per expert (MTT 50; DATM/PAD 100); the trajectory has
      ``epochs + 1`` entries.
    lr: SGD learning rate (``lr_teacher``), constant.
    momentum: SGD momentum (MTT ``--mom``, default 0).
    weight_decay: coupled (PyTorch-style) L2 decay (MTT ``--l2``, default 0).
    batch_size: minibatch size (``batch_train``).
    dsa: per-sample DSA on every training batch.
    dsa_strategy: DSA groups, see ``jaxdd.augment.dsa``.
    seed: base seed; expert ``i`` uses ``fold_in(key(seed), i)``.
    seed_loop: 'auto', 'map' or 'vmap', see ``train.members.over_members``.
  """
  num_experts: int = 100
  epochs: int = 50
  lr: float = 0.01
  momentum: float = 0.0
  weight_decay: float = 0.0
  batch_size: int = 256
  dsa: bool = True
  dsa_strategy: str = dsa_lib.DEFAULT_STRATEGY
  seed: int = 0
  seed_loop: str = 'auto'


# field -> (accepted?, what is accepted), ``config_fields.check_fields``.
CHECKS = {
    'num_experts': cf.positive_int(),
    'epochs': cf.positive_int(),
    'lr': cf.positive_num(),
    'momentum': cf.fraction(),
    'weight_decay': cf.non_negative_num(),
    'batch_size': cf.positive_int(),
    'dsa': cf.boolean(),
    'seed': cf.seed32(),
    'seed_loop': cf.one_of(members.MEMBER_LOOPS),
}


def check_expert_config(cfg: ExpertConfig) -> None:
  """Raises ConfigError naming ``objective.experts.<field>`` for an invalid value."""
  cf.check_fields(cfg, CHECKS, SECTION)
  if cfg.dsa:
    try:
      dsa_lib.parse_strategy(cfg.dsa_strategy)
    except ConfigError as e:
      raise ConfigError(f'{SECTION}.{e}') from None


class Buffer(NamedTuple):
  """Expert trajectories.

  Attributes:
    trajectories: float32 [E, epochs + 1, P]: flat parameters
      (``models.utils.flatten_params``, shallow to deep); entry 0 is the init.
    unflatten: flat vector [P] -> params dict (jit/vmap-able).
    spec: ``models.utils.param_spec`` of the params: [(path, shape, offset)].
    meta: JSON-able dict (config, data, timings, per-epoch training loss/accuracy).
  """
  trajectories: np.ndarray
  unflatten: Callable[[jax.Array], dict]
  spec: list
  meta: dict


def _optimizer(cfg: ExpertConfig):
  # MTT: SGD(lr_teacher, momentum=mom, weight_decay=l2), constant lr.
  return optim.sgd(cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_init_fn(model, image_shape, cfg: ExpertConfig):
  """Builds ``init(key) -> TrainState`` of one expert (from the init stream of key)."""
  tx = _optimizer(cfg)
  return lambda key: step_lib.init_state(model, tx, members.streams(key).init,
                                         image_shape)


def make_epoch_fn(model, image_shape, cfg: ExpertConfig, num_train: int):
  """Builds ``epoch(state, key, epoch, idx, count, choice_key, x, y)`` for one expert.

  One pass of minibatch SGD over ``idx[:count]`` in random order (MTT
  ``utils.epoch('train', ...)`` with ``aug=True``): for each batch B,
  θ ← θ − lr·(momentum buffer of ∇[mean_{i∈B} CE(f_θ(DSA(x_i)), y_i)] + wd·θ).

  Args (of the returned function):
    state: the ``train.step.TrainState`` of one expert.
    key: the expert's key ``k_i``.
    epoch: int32 scalar (traced), folds into the data and augmentation keys.
    idx: int32 [num_train]: allowed training indices, padded (values past
      ``count`` are ignored).
    count: int32 scalar (traced): number of allowed indices, 1..num_train.
    choice_key: the DSA-group key shared by all experts.
    x: float32 [num_train, H, W, C]; y: int32 [num_train].

  Returns:
    (state, flat params [P] float32, mean training loss, training accuracy) of the
    epoch, the last two over the augmented batches.
  """
  tx = _optimizer(cfg)
  batch = min(cfg.batch_size, num_train)

  def epoch_fn(state, key, epoch, idx, count, choice_key, x, y):
    keys = members.streams(key)
    order = batches.masked_order(keys.data, epoch, idx, count)
    aug_key = jax.random.fold_in(keys.aug, epoch)
    choice_key = jax.random.fold_in(choice_key, epoch)

    def step(j, carry):
      state, loss_sum, correct = carry
      rows, mask = batches.masked_batch(order, j, batch, count)
      xb, yb = x[rows], y[rows]
      if cfg.dsa:
        xb = dsa_lib.dsa(jax.random.fold_in(aug_key, j), xb, strategy=cfg.dsa_strategy,
                         siamese=False, choice_key=jax.random.fold_in(choice_key, j))
      # The mean over the valid rows: PyTorch's mean over a smaller last batch.
      state, _, logits = step_lib.supervised_step(
          model, tx, state, xb, lambda z: losses_lib.ce_rows(z, yb), weights=mask)
      ce = losses_lib.ce_rows(logits, yb)
      hits = (jnp.argmax(logits, -1) == yb).astype(jnp.float32)
      return state, loss_sum + jnp.sum(ce * mask), correct + jnp.sum(hits * mask)

    state, loss_sum, correct = jax.lax.fori_loop(   # dynamic trip count: a while loop
        0, batches.masked_num_batches(count, batch), step,
        (state, jnp.float32(0), jnp.float32(0)))
    flat, _ = models_lib.flatten_params(state.variables['params'])
    return state, flat, loss_sum / count, correct / count

  return epoch_fn


@functools.partial(jax.jit, static_argnames=('model', 'image_shape', 'cfg'))
def _epoch_all(states, ids, seed, epoch, idx, count, x, y, *, model, image_shape, cfg):
  """One epoch of every expert (``train.members.over_members``); epoch 0 initialises
  first.

  Returns (flat params at the start [E, P], states, flat params at the end [E, P],
  mean loss [E], accuracy [E]).
  """
  init_fn = make_init_fn(model, image_shape, cfg)
  epoch_fn = make_epoch_fn(model, image_shape, cfg, x.shape[0])
  choice_key = jax.random.fold_in(jax.random.key(seed), _CHOICE_FOLD)

  def one_expert(state_and_id):
    state, i = state_and_id
    key = members.member_key(seed, i)
    # Epoch 0 starts from a fresh init (a real cond: ``epoch`` is not batched), so
    # initialisation and training share one compiled program.
    state = jax.lax.cond(epoch == 0, lambda s: init_fn(key), lambda s: s, state)
    start, _ = models_lib.flatten_params(state.variables['params'])
    return (start,) + epoch_fn(state, key, epoch, idx, count, choice_key, x, y)

  return members.over_members(one_expert, (states, ids), cfg.seed_loop)


def _check_inputs(model, image_shape, x_train, y_train, num_classes, cfg):
  check_expert_config(cfg)
  shapes = jax.eval_shape(
      lambda k: models_lib.init_model(model, k, tuple(image_shape)), jax.random.key(0))
  if models_lib.has_batch_norm(shapes):
    raise ConfigError(
        f'model {type(model).__name__} has batch norm; expert trajectories need a '
        'model without running statistics (accepted: instancenorm, groupnorm, '
        'layernorm or none, as MTT\'s ConvNet)')
  x_train, y_train = np.asarray(x_train), np.asarray(y_train)
  if x_train.ndim != 4 or tuple(x_train.shape[1:]) != tuple(image_shape):
    raise DataError(f'expert training images have shape {x_train.shape}, expected '
                    f'[N, {", ".join(map(str, image_shape))}]')
  if y_train.shape != (x_train.shape[0],) or x_train.shape[0] == 0:
    raise DataError(f'expert training labels have shape {y_train.shape}, expected '
                    f'[{x_train.shape[0]}] with N >= 1')
  if y_train.min() < 0 or y_train.max() >= num_classes:
    raise DataError(f'expert training labels must be in [0, {num_classes}), got '
                    f'[{y_train.min()}, {y_train.max()}]')


def _epoch_indices(schedule, epoch: int, n: int):
  """(padded int32 [n], count) of epoch ``epoch``: all of 0..n-1 without a schedule."""
  if schedule is None:
    return np.arange(n, dtype=np.int32), n
  idx = np.asarray(schedule(epoch))
  if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or not 0 < idx.size <= n:
    raise DataError(f'schedule({epoch}) must return 1 to {n} integer indices, got '
                    f'shape {idx.shape} dtype {idx.dtype}')
  if idx.min() < 0 or idx.max() >= n:
    raise DataError(f'schedule({epoch}) returned indices outside [0, {n})')
  padded = np.zeros(n, np.int32)
  padded[:idx.size] = idx
  return padded, int(idx.size)


def model_layout(model, image_shape):
  """(param_spec, unflatten) of the model's params, by abstract evaluation only."""
  out = {}

  def layout(key):  # traced once by eval_shape: no compilation, no arrays
    params = models_lib.init_model(model, key, tuple(image_shape))['params']
    out['spec'] = models_lib.param_spec(params)
    vec, out['unflatten'] = models_lib.flatten_params(params)
    return vec

  jax.eval_shape(layout, jax.random.key(0))
  return out['spec'], out['unflatten']


def train_experts(model, image_shape, x_train, y_train, num_classes: int,
                  cfg: ExpertConfig, *, schedule: Callable[[int], np.ndarray] | None = None,
                  first_expert: int = 0, verbose: bool = True) -> Buffer:
  """Trains ``cfg.num_experts`` fresh networks at once and records their trajectories.

  MTT's expert buffer (docs/methods.md §1 MTT "Experts"; with ``schedule``, PAD's
  scheduled experts, §2 PAD). One jitted epoch function, compiled once, advances all
  experts (``train.members.over_members``) by one epoch; the host records the flat
  parameters and prints one progress line per epoch.

  Args:
    model: a Flax module from ``models.get_model`` without batch norm.
    image_shape: (H, W, C).
    x_train: float32 [N, H, W, C] (preprocessed), y_train: int [N].
    num_classes: K.
    cfg: ``ExpertConfig``.
    schedule: ``schedule(e) -> int array`` of the training indices allowed in epoch
      ``e`` (0-based); sizes may differ between epochs without recompiling.
    first_expert: experts ``first_expert .. first_expert + num_experts - 1`` are
      trained (their keys depend only on ``cfg.seed`` and the index, so a buffer can
      be built in chunks).
    verbose: print the per-epoch progress line.

  Returns:
    A ``Buffer`` with trajectories [num_experts, epochs + 1, P], held on the host:
    E·(epochs + 1)·P floats (10 ConvNet-3 experts x 51 entries on CIFAR-10: 0.65
    GB). Build large buffers in chunks with ``first_expert`` (MTT saves 10 per file);
    chunks of one size share one compilation.

  Raises:
    ConfigError: bad ``cfg`` or a batch-norm model; DataError: bad data or schedule.
  """
  image_shape = tuple(int(s) for s in image_shape)
  _check_inputs(model, image_shape, x_train, y_train, num_classes, cfg)
  if not is_int(first_expert) or first_expert < 0:
    raise ConfigError(f'first_expert must be an integer >= 0, got {first_expert!r}')
  n = int(np.shape(x_train)[0])
  x = jnp.asarray(x_train, jnp.float32)
  y = jnp.asarray(y_train, jnp.int32)
  ids = np.arange(first_expert, first_expert + cfg.num_experts, dtype=np.int32)
  # Only what the compiled program depends on is static: one compile serves every
  # seed and every chunk of experts of the same size.
  static = dict(model=model, image_shape=image_shape,
                cfg=cfg._replace(num_experts=0, epochs=0, seed=0))
  init_fn = make_init_fn(model, image_shape, cfg)

  # Placeholders of the right structure for epoch 0 (replaced by the init there).
  states = jax.tree_util.tree_map(
      lambda s: np.zeros((cfg.num_experts,) + s.shape, s.dtype),
      jax.eval_shape(init_fn, jax.random.key(0)))
  spec, unflatten = model_layout(model, image_shape)
  num_params = sum(math.prod(shape) for _, shape, _ in spec)
  traj = np.empty((cfg.num_experts, cfg.epochs + 1, num_params), np.float32)
  label = f'experts {first_expert}..{first_expert + cfg.num_experts - 1}'

  def epoch_args(e):
    idx, count = _epoch_indices(schedule, e, n)
    return (np.int32(cfg.seed), np.int32(e), idx, np.int32(count), x, y), count

  losses, accs, sizes, seconds = [], [], [], []
  t_start = time.time()
  # Compile ahead (the jit cache then serves the calls) so epoch times exclude it.
  _epoch_all.lower(states, ids, *epoch_args(0)[0], **static).compile()
  compile_seconds = time.time() - t_start
  if verbose:
    print(f'{label}: compiled in {compile_seconds:.1f} s', flush=True)
  for e in range(cfg.epochs):
    t0 = time.time()
    args, count = epoch_args(e)
    start, states, flat, loss, acc = _epoch_all(states, ids, *args, **static)
    if sharding.context_axis_size(sharding.ROWS) > 1:
      # On a mesh the states come back in the layout XLA chose, not the host arrays
      # the program was compiled for: as host arrays, every epoch reuses that program.
      states = jax.tree_util.tree_map(sharding.to_host, states)
    # to_host: on several processes the experts are spread over all of them.
    if e == 0:
      traj[:, 0] = sharding.to_host(start)
    traj[:, e + 1] = sharding.to_host(flat)  # blocks until the epoch is done
    losses.append(sharding.to_host(loss).tolist())
    accs.append(sharding.to_host(acc).tolist())
    sizes.append(count)
    seconds.append(time.time() - t0)
    if verbose:
      print(f'{label}: epoch {e + 1}/{cfg.epochs} on {count} images, '
            f'{seconds[-1]:.1f} s, loss {np.mean(losses[-1]):.4f}, acc '
            f'{np.mean(accs[-1]):.4f}, ETA {np.mean(seconds) * (cfg.epochs - e - 1):.0f} s',
            flush=True)

  meta = {
      'config': cfg._asdict(), 'first_expert': int(first_expert), 'num_train': n,
      'image_shape': list(image_shape), 'num_classes': int(num_classes),
      'model': type(model).__name__, 'seconds': round(time.time() - t_start, 3),
      'compile_seconds': round(compile_seconds, 3),
      'epoch_seconds': [round(s, 3) for s in seconds], 'epoch_sizes': sizes,
      'train_loss': losses, 'train_acc': accs,  # [epochs][experts]
  }
  return Buffer(traj, unflatten, spec, meta)
