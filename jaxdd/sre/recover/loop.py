"""The sequential recover loop: teacher statistics once (``prepare_targets``), one
jitted ``lax.scan`` per batch (``make_batch_fn``), and ``synthesize`` over the IPC
batches. See the ``jaxdd.sre.recover`` package docstring for the algorithm.
"""

import time
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdd import sharding
from jaxdd.data.sampling import select_real_init
from jaxdd.errors import ConfigError
from jaxdd.sre.recover.config import (RecoverConfig, batch_betas, check_recover_config,
                                  clip_bounds)
from jaxdd.sre.recover.methods import METHODS
from jaxdd.sre.recover.methods import StepInfo


def _as_teachers(teachers):
  """(model, variables) or a sequence of them -> (list, was_single)."""
  if len(teachers) == 2 and isinstance(teachers[0], nn.Module):
    return [tuple(teachers)], True
  return [tuple(t) for t in teachers], False


def prepare_targets(method: str, teacher, x_train, y_train, num_classes: int,
                    cfg: RecoverConfig, log: Callable[[str], None] = lambda line: None):
  """Teacher statistics over the full training set, once (``accumulate_statistics``).

  SRe2L: the BN running (mean, var) per BN input (no data pass). CFM: per
  non-downsample conv input (Σ_t [C, C], μ_t [C] or Φ_t [C, K]); UniDD's ``hook.py``
  averages per-batch covariances instead (the within-batch part of Σ_t). EDC: per
  conv/BN input {'chan'[, 'patch']: {'global', 'class'}} of {'mean', 'var'}; EDC
  computes its conv statistics on augmented training batches and, as a quirk, swaps the
  per-class patch mean/var keys on save: neither is reproduced.

  Args:
    method: a key of ``METHODS``.
    teacher: (model, variables) or a list of them (-> a list of targets).
    x_train: [N, H, W, C] preprocessed images; y_train: [N] int labels.
    num_classes: K.
    cfg: the RecoverConfig (stats_batch_size, cfm_signal, edc_form, patch_stats).
    log: called with one line per teacher (a pass over the whole training set can take
      minutes on a CPU; the first line gives the ETA of the rest); silent by default.
  """
  check_recover_config(cfg._replace(method=method))   # names 'method' when unknown
  teachers, single = _as_teachers(teacher)
  x_train, y_train = np.asarray(x_train), np.asarray(y_train)
  out, t0 = [], time.time()
  log(f'[recover {method}] teacher statistics of {len(teachers)} teacher(s) over '
      f'{len(x_train)} training images')
  for i, (m, v) in enumerate(teachers):
    out.append(METHODS[method].prepare(cfg, m, v, x_train, y_train, num_classes))
    done = time.time() - t0
    eta = done / (i + 1) * (len(teachers) - i - 1)
    log(f'[recover {method}] teacher statistics {i + 1}/{len(teachers)}: '
        f'{done:.0f} s, ETA {eta:.0f} s')
  return out[0] if single else out


def make_batch_fn(cfg: RecoverConfig, models: Sequence[nn.Module]):
  """The jitted optimisation of one sequential batch (compiled once per run).

  Returns:
    run(images0 [K, H, W, C], labels [K], variables (list), targets (list), state,
    key, batch_index, beta) -> (images, state, metrics {name: [iterations]}), with
    state = {'teachers': tuple per teacher, 'shared': {'ema_images'}}.
  """
  method = METHODS[cfg.method]
  n = len(models)
  sched = (optax.cosine_decay_schedule(cfg.lr, cfg.iterations) if cfg.cosine
           else cfg.lr)
  opt = optax.adam(sched, b1=cfg.betas[0], b2=cfg.betas[1], eps=cfg.eps)
  lo, hi = clip_bounds(cfg)

  def run(images0, labels, variables, targets, state, key, batch_index, beta):
    state = {**state, 'shared': {'ema_images': images0}}

    def branch(i, info, k):
      def f(images, s):
        teachers = s['teachers']
        loss, ((ts, shared), metrics) = method.loss(
            cfg, images, labels, (models[i], variables[i]), targets[i],
            (teachers[i], s['shared']), info, k)
        teachers = tuple(ts if j == i else teachers[j] for j in range(n))
        return loss, ({'teachers': teachers, 'shared': shared}, metrics)
      return f

    def step(carry, t):
      images, opt_state, s = carry
      images = sharding.shard_rows(images)   # the batch's classes over the devices
      info = StepInfo(batch_index, t, beta)
      k = jax.random.fold_in(key, t)
      if n == 1:
        f = branch(0, info, k)
      else:   # EDC's round robin over a global step counter
        which = (batch_index * cfg.iterations + t) % n
        f = lambda im, s_: jax.lax.switch(which, [branch(i, info, k) for i in range(n)],
                                          im, s_)
      (loss, (s, metrics)), grad = jax.value_and_grad(f, has_aux=True)(images, s)
      updates, opt_state = opt.update(grad, opt_state, images)
      images = optax.apply_updates(images, updates)
      if cfg.clip:
        images = jnp.clip(images, lo, hi)
      return (images, opt_state, s), {'loss': loss, **metrics}

    (images, _, state), metrics = jax.lax.scan(
        step, (images0, opt.init(images0), state), jnp.arange(cfg.iterations))
    teachers = tuple(method.end_batch(cfg, ts, batch_index) for ts in state['teachers'])
    return images, {**state, 'teachers': teachers}, metrics

  return jax.jit(run)


def synthesize(key, teacher, targets, cfg: RecoverConfig, num_classes: int,
               image_shape: tuple, real_init=None, *, data=None,
               log: Callable[[str], None] = print, return_info: bool = False):
  """Recovers ``ipc`` images per class in ``ipc`` sequential batches of one per class.

  Batch k starts from N(0, 1) noise (``init='noise'``) or from the k-th real image of
  every class, and is optimised by ``make_batch_fn`` with β_k = ``batch_betas(cfg)[k]``;
  the method state (EMU running statistics, EDC smoothing EMAs) carries over batches.

  Args:
    key: PRNG key; batch k's noise and steps come from fold_in(key', k) (step t folds
      in t), the real-image selection from a key split off first.
    teacher: (model, variables) or a list of them (EDC's round robin, see
      ``jaxdd.sre.recover``).
    targets: ``prepare_targets`` output (a list for a list of teachers).
    cfg: RecoverConfig.
    num_classes: K.
    image_shape: (H, W, C).
    real_init: [K·ipc, H, W, C] real images, class-major (as
      ``jaxdd.data.sampling.select_real_init`` returns), for init='real'.
    data: (x_train, y_train), from which ``select_real_init`` picks ``real_init`` when
      it is not given.
    log: called with one progress line (loss, time, ETA) per batch.
    return_info: also return {'beta' [ipc], 'loss' [ipc, iterations], 'state'}.

  Returns:
    (images [ipc·K, H, W, C], labels int32 [ipc·K]) ordered by batch then class
    (labels = 0..K−1 repeated ipc times) [, info].

  Raises:
    ConfigError: bad ``cfg``, or init='real' without real images of the right shape.
    FloatingPointError: a non-finite loss (names the batch, iteration and term).
  """
  check_recover_config(cfg)
  teachers, single = _as_teachers(teacher)
  targets = [targets] if single else list(targets)
  if len(targets) != len(teachers):
    raise ConfigError(f'targets: {len(targets)} given for {len(teachers)} teachers')
  shape = (num_classes,) + tuple(image_shape)
  init_key, loop_key = jax.random.split(key)
  if cfg.init == 'real':
    if real_init is None and data is not None:
      real_init, _ = select_real_init(init_key, data[0], data[1],
                                      num_classes, cfg.ipc)
    want = (num_classes * cfg.ipc,) + shape[1:]
    if real_init is None or tuple(np.shape(real_init)) != want:
      raise ConfigError(f"init='real' needs real_init of shape {want} (or data=(x, y)), "
                        f'got {None if real_init is None else np.shape(real_init)}')
    per_class = jnp.asarray(real_init, jnp.float32).reshape(
        (num_classes, cfg.ipc) + shape[1:])
  method = METHODS[cfg.method]
  run = make_batch_fn(cfg, [m for m, _ in teachers])
  variables = [v for _, v in teachers]
  state = {'teachers': tuple(method.init_state(cfg, t) for t in targets),
           'shared': {'ema_images': jnp.zeros(shape, jnp.float32)}}
  labels = jnp.arange(num_classes, dtype=jnp.int32)
  betas = batch_betas(cfg)
  out, losses, start = [], [], time.time()
  for k in range(cfg.ipc):
    noise_key, bkey = jax.random.split(jax.random.fold_in(loop_key, k))
    if cfg.init == 'real':
      images0 = per_class[:, k]
    else:
      images0 = jax.random.normal(noise_key, shape, jnp.float32)
    images, state, metrics = run(images0, labels, variables, targets, state, bkey,
                                 jnp.int32(k), jnp.float32(betas[k]))
    metrics = jax.device_get(metrics)
    for name, values in metrics.items():
      bad = np.flatnonzero(~np.isfinite(values))
      if bad.size:
        raise FloatingPointError(f'recover ({cfg.method}): non-finite {name!r} at '
                                 f'batch {k}, iteration {int(bad[0])}')
    out.append(images)
    losses.append(metrics['loss'])
    elapsed = time.time() - start
    log(f'[recover {cfg.method}] batch {k + 1}/{cfg.ipc} beta {betas[k]:.4f} loss '
        f'{metrics["loss"][0]:.4f} -> {metrics["loss"][-1]:.4f}  {elapsed:.1f}s, ETA '
        f'{elapsed / (k + 1) * (cfg.ipc - k - 1):.1f}s')
  images = jnp.concatenate(out)
  labels = jnp.tile(labels, cfg.ipc)
  if return_info:
    return images, labels, {'beta': betas, 'loss': np.stack(losses), 'state': state}
  return images, labels


__all__ = ['prepare_targets', 'make_batch_fn', 'synthesize']
