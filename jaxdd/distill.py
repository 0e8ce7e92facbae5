"""The generic distillation loop (docs/design.md): one jitted step, checkpoints, outputs.

    step(state, key) = sample a class-balanced real batch on device -> decode the
                       synthetic set -> value_and_grad of the objective -> optax update

Nothing in here knows a method: the parameterization and the objective are looked up
by name in ``jaxdd.registry``; their schedules are functions of ``step`` inside them.

Sections, top to bottom: optimizers · the step · config checks · model selection · the
run (setup, resume, loop, non-finite guard, results) · outputs (npz, png, evaluation).
"""

import json
import math
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from etils import epath

from jaxdd import clipping
from jaxdd import data as data_lib
from jaxdd import evaluate as eval_lib
from jaxdd import host_memory
from jaxdd import models as models_lib
from jaxdd import registry
from jaxdd import sharding as sharding_lib
from jaxdd.config_fields import (boolean, non_negative_int, one_of, positive_int,
                                 positive_num, read_section)
from jaxdd.pretrain import real_filter
from jaxdd.errors import ConfigError, is_int, is_num
from jaxdd.interfaces import RealBatch
from jaxdd.outputs import as_path, save_grid_png, write_json, write_npz

OPTIMIZERS = ('sgd', 'adam', 'lamb')


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; the message names the step and the term."""


# ----------------------------------------------------------------------------------
# Optimizers: images, labels and learned extras each get their own.
# ----------------------------------------------------------------------------------


class OptimizerConfig(NamedTuple):
  """``config.optim.{images, labels, extras}``: one optax optimizer.

  Attributes:
    name: 'sgd', 'adam' or 'lamb'.
    lr: the learning rate, > 0; no default (every config gives its own).
    momentum: SGD's; 0 = none.
    b1, b2: Adam's and LAMB's.
    cosine_decay_steps, cosine_alpha: > 0 decays the lr on a cosine over that many
      steps to cosine_alpha x lr (FRePo); 0 = a constant lr.
    clip_running_norm, clip_factor, clip_decay: clip the gradient to clip_factor x an
      EMA (decay clip_decay) of its norm (jaxdd.clipping; RaT-BPTT).
    nonnegative: clamp the parameters >= 0 after every update (learned labels).
  """
  name: str = 'sgd'
  lr: float | None = None
  momentum: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  cosine_decay_steps: int = 0
  cosine_alpha: float = 0.0
  clip_running_norm: bool = False
  clip_factor: float = 2.0
  clip_decay: float = 0.9
  nonnegative: bool = False


OPTIMIZER_CHECKS = {'name': one_of(OPTIMIZERS), 'lr': positive_num(),
                    'cosine_decay_steps': non_negative_int(),
                    'clip_running_norm': boolean(), 'nonnegative': boolean()}


def make_optimizer(section, field: str) -> optax.GradientTransformation:
  """One optax optimizer from the section ``field`` (``OptimizerConfig``).

  Raises:
    ConfigError: an unknown field or a value out of range, naming ``field.<name>``.
  """
  cfg = read_section(section, OptimizerConfig, field, OPTIMIZER_CHECKS)
  lr = cfg.lr
  if cfg.cosine_decay_steps:   # FRePo: cosine decay to cosine_alpha x lr
    lr = optax.cosine_decay_schedule(lr, cfg.cosine_decay_steps, alpha=cfg.cosine_alpha)
  if cfg.name == 'sgd':
    tx = optax.sgd(lr, momentum=cfg.momentum or None)
  elif cfg.name == 'adam':
    tx = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
  else:
    tx = optax.lamb(lr, b1=cfg.b1, b2=cfg.b2)
  if cfg.clip_running_norm:   # RaT-BPTT: clip to 2x an EMA of the norm
    tx = optax.chain(clipping.clip_by_running_norm(cfg.clip_factor, cfg.clip_decay), tx)
  if cfg.nonnegative:         # RaT-BPTT's labels: clamped >= 0 after a step
    tx = optax.chain(tx, optax.keep_params_nonnegative())
  return tx


def group_labels(params) -> Any:
  """Maps every leaf of the state's params to its optimizer group."""
  syn = {k: jax.tree_util.tree_map(lambda _, k=k: 'labels' if k == 'labels' else 'images', v)
         for k, v in params['syn'].items()}
  extras = jax.tree_util.tree_map(lambda _: 'extras', params['extras'])
  return {'syn': syn, 'extras': extras}


def make_tx(config) -> optax.GradientTransformation:
  optim = config.optim
  groups = {'images': make_optimizer(optim.images, 'optim.images')}
  for name in ('labels', 'extras'):
    groups[name] = (make_optimizer(optim[name], f'optim.{name}') if name in optim
                    else optax.set_to_zero())
  return optax.multi_transform(groups, group_labels)


# ----------------------------------------------------------------------------------
# The step.
# ----------------------------------------------------------------------------------


def make_step(param, objective, ctx, tx, batch_real: int):
  """Builds the pure ``step(state, base_key, x_train, index) -> (state, metrics)``.

  Traced on a mesh (``sharding.traced_on``), the real batch's images are split over
  every device (``ROWS``, along each class's ``n``); the objectives split their own
  work the same way (docs/design.md, "Sharding").
  """

  def step(state, base_key, x_train, index):
    key = jax.random.fold_in(base_key, state['step'])
    sample_key, loss_key = jax.random.split(key)
    state_key = jax.random.fold_in(key, 1)   # fold_in keeps the first two keys unchanged
    idx = data_lib.sample_class_balanced(sample_key, index, batch_real)   # [K, n]
    images = sharding_lib.shard_rows(x_train[idx], axis=1)
    labels = jnp.broadcast_to(jnp.arange(idx.shape[0])[:, None], idx.shape)
    real = RealBatch(images, labels)

    def loss_fn(params):
      syn = param.decode(params['syn'])._replace(extras=params['extras'])
      return objective.loss(syn, real, loss_key, ctx, state['step'], state['objective'])

    (value, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    params = {**params, 'syn': param.project(params['syn'])}
    if 'skip_update' in aux:   # the objective vetoed this step (DATM's skip rule)
      keep_old = aux['skip_update'] > 0
      params, opt_state = jax.tree_util.tree_map(
          lambda old, new: jnp.where(keep_old, old, new),
          (state['params'], state['opt_state']), (params, opt_state))
    # The objective's own state moves on with the updated (constant) synthetic set.
    new_syn = jax.lax.stop_gradient(
        param.decode(params['syn'])._replace(extras=params['extras']))
    obj_state = objective.update_state(new_syn, real, state_key, ctx, state['step'],
                                       state['objective'])
    metrics = {'loss': value, **aux, 'grad_norm': optax.tree.norm(grads)}
    new_state = {'params': params, 'opt_state': opt_state, 'objective': obj_state,
                 'step': state['step'] + 1}
    return new_state, metrics

  return step


# ----------------------------------------------------------------------------------
# Config checks: everything a user can get wrong, before anything is compiled.
# ----------------------------------------------------------------------------------


def check_config(config) -> None:
  """Raises ConfigError naming the field and what is accepted."""
  ipc = config.get('ipc', None)
  fractional = config.parameterization.get('name') in registry.FRACTIONAL_IPC
  if fractional:   # a poster's budget may be 0.3 images per class
    if not is_num(ipc) or not ipc > 0:
      raise ConfigError(f'ipc must be a positive number, got {ipc!r}')
  elif not is_int(ipc) or ipc <= 0:
    raise ConfigError(f'ipc must be a positive integer, got {ipc!r}')
  for field in ('steps', 'objective.batch_real', 'checkpoint_every', 'log_every',
                'eval.seeds', 'eval.epochs'):
    value = config
    for part in field.split('.'):
      value = value[part]
    if not is_int(value) or value <= 0:
      raise ConfigError(f'{field} must be a positive integer, got {value!r}')
  if config.objective.name not in registry.OBJECTIVES:
    raise ConfigError(f'objective.name must be one of {", ".join(registry.OBJECTIVES)},'
                      f' got {config.objective.name!r}')
  if config.parameterization.name not in registry.PARAMETERIZATIONS:
    raise ConfigError('parameterization.name must be one of '
                      f'{", ".join(registry.PARAMETERIZATIONS)}, '
                      f'got {config.parameterization.name!r}')
  for field, name in (('model.name', config.model.name), ('eval.model', config.eval.model)):
    if name not in models_lib.MODEL_NAMES:
      raise ConfigError(f'{field} must be one of {", ".join(models_lib.MODEL_NAMES)}, '
                        f'got {name!r}')
  parse_model_selection(config)
  sharding_lib.parse_mesh(config.get('mesh'))
  real_filter.settings(config)
  make_tx(config)
  eval_lib.check_eval_config(eval_config(config))


def eval_config(config) -> eval_lib.EvalConfig:
  """``config.eval``'s protocol fields; a field the config leaves out keeps EvalConfig's default."""
  e = config.eval
  return eval_lib.EvalConfig(**{field: e.get(field, default)
                                for field, default in eval_lib.EvalConfig._field_defaults.items()})


def protocol_for(config, syn) -> eval_lib.EvalConfig:
  """The protocol that scores ``syn``: trajectory matching trains with its learned lr."""
  cfg = eval_config(config)
  if 'syn_lr' in syn.extras:
    cfg = cfg._replace(lr=float(syn.extras['syn_lr']))
  return cfg


# ----------------------------------------------------------------------------------
# Model selection: the output is the set of the step with the best training accuracy.
# ----------------------------------------------------------------------------------


class ModelSelectionConfig(NamedTuple):
  """``config.select``: model selection by training-set accuracy (PoDD, docs/methods.md §2).

  Every ``every`` steps, and at the last, ``seeds`` networks train on the current set
  by the evaluation protocol and are scored on ``samples`` training images (a fixed
  random subset, or all of them); the best set is the output. ``every=0`` (the
  default; also a config without ``select``): off, the output is the last step's set.
  """
  every: int = 0
  seeds: int = 1
  samples: int = 10000


MODEL_SELECTION_CHECKS = {
    'every': (non_negative_int()[0], '0 (off) or a positive integer'),
    'seeds': positive_int(), 'samples': positive_int()}


def parse_model_selection(config) -> ModelSelectionConfig:
  """``ModelSelectionConfig`` from ``config.select``, checked.

  Raises:
    ConfigError: an unknown field or a value out of range, naming ``select.<field>``.
  """
  section = config.select if 'select' in config else None
  return read_section(section, ModelSelectionConfig, 'select', MODEL_SELECTION_CHECKS)


def make_model_selection_score(config, ds, param):
  """``score(params) -> float`` for model selection, or None when ``select.every`` is 0.

  PoDD selects its poster by training-set accuracy (docs/methods.md §2 PoDD): the score is
  the mean accuracy of ``select.seeds`` networks trained on the decoded set by the
  evaluation protocol, on ``select.samples`` training images (a fixed random subset, or
  all of them). The test split is never looked at. A learned lr (trajectory matching)
  is static in the protocol, so each selection then compiles the protocol again.
  """
  select = parse_model_selection(config)
  if not select.every:
    return None
  n = len(ds.y_train)
  order = np.random.default_rng(config.seed + 2).permutation(n)
  keep = np.sort(order[:select.samples])
  x_sel, y_sel = ds.x_train[keep], ds.y_train[keep]
  model = models_lib.get_model(config.eval.model, ds.num_classes,
                               image_shape=tuple(ds.x_train.shape[1:]))
  key = jax.random.key(config.seed + 2)

  def score(params) -> float:
    params = jax.tree_util.tree_map(sharding_lib.to_host, params)
    syn = param.decode(params['syn'])._replace(extras=params['extras'])
    res = eval_lib.evaluate_synset(key, model, syn.images, syn.labels, x_sel, y_sel,
                                   num_seeds=select.seeds,
                                   cfg=protocol_for(config, syn),
                                   num_classes=ds.num_classes)
    return res['accuracy_mean']

  return score


def _selected_copy(params, accuracy, step) -> dict:
  """The selected set so far: a copy (the step donates its state), its score and step."""
  return {'params': jax.tree_util.tree_map(jnp.copy, params),
          'accuracy': jnp.float32(accuracy), 'step': jnp.int32(step)}


def _bundle(state, selected):
  """What a checkpoint holds: the state, and the selected set when selection is on."""
  return state if selected is None else {**state, 'selected': selected}


# ----------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------


def _format_seconds(s: float) -> str:
  s = int(max(s, 0))
  return f'{s // 3600}h{s % 3600 // 60:02d}m' if s >= 3600 else f'{s // 60}m{s % 60:02d}s'


def _first_non_finite(metrics: dict) -> str | None:
  for name, value in metrics.items():
    if not np.isfinite(value):
      return name
  return None


def _truncate_metrics(path: epath.PathLike, last_step: int) -> None:
  """Drops metric lines of steps after the restored checkpoint (they will be redone),
  and a last line cut short by a killed run."""
  path = epath.Path(path)
  if not path.exists():
    return

  def keep(line: str) -> bool:
    try:
      return json.loads(line)['step'] <= last_step
    except (ValueError, KeyError, TypeError):
      return False

  lines = [l if l.endswith('\n') else l + '\n'
           for l in path.read_text().splitlines(keepends=True) if keep(l)]
  path.write_text(''.join(lines))


class Setup(NamedTuple):
  """Everything a run needs, built once from the config (before any compilation)."""
  ds: Any
  param: Any
  objective: Any
  ctx: Any
  state: dict
  step_fn: Any        # jitted step(state, base_key, x_train, index), state donated
  base_key: Any
  x_train: Any
  index: Any
  mesh: Any


def setup(config, mesh=None) -> Setup:
  """Validates the config and data, builds the method and the initial state on
  ``mesh`` (default: the config's ``mesh`` section over every device)."""
  check_config(config)
  # ---- Data: loaded and validated on the host, then placed on the device once.
  ds = data_lib.load_from_config(config)
  data_lib.check_ipc(ds, math.ceil(config.ipc))
  # The images the objective's real batches and the real init come from: the whole
  # training set, or PAD's difficulty-filtered pool (real_filter). Evaluation, the
  # random-subset baseline and model selection keep ``ds``.
  keep = real_filter.real_pool(ds, config)
  pool = ds if keep is None else ds._replace(x_train=ds.x_train[keep],
                                             y_train=ds.y_train[keep])
  if keep is not None:
    data_lib.check_ipc(pool, math.ceil(config.ipc))
  image_shape = tuple(ds.x_train.shape[1:])
  mesh = sharding_lib.make_mesh(config.get('mesh')) if mesh is None else mesh
  replicated = sharding_lib.replicated(mesh)

  # ---- Method: parameterization x objective.
  param = registry.get_parameterization(config, ds.num_classes, image_shape, ds)
  objective = registry.get_objective(config)
  ctx = objective.prepare(ds, config)
  tx = make_tx(config)

  init_key, base_key = jax.random.split(jax.random.key(config.seed))
  state_key = jax.random.fold_in(init_key, 1)
  if objective.init_filter is None:
    sample_real = lambda m: data_lib.select_real_init(
        config.seed, pool.x_train, pool.y_train, ds.num_classes, m)
  else:   # e.g. DATM: only images the experts classify correctly, with their logits
    keep_fn = lambda x, y: objective.init_filter(ctx, x, y)   # jitted by the objective
    sample_real = lambda m: data_lib.select_real_init_filtered(
        config.seed, pool.x_train, pool.y_train, ds.num_classes, m, keep_fn)
  syn_params = param.init(init_key, sample_real)
  params = {'syn': syn_params, 'extras': objective.init_extras(ctx, config)}
  state = {'params': params, 'opt_state': tx.init(params),
           'objective': objective.init_state(state_key, ctx), 'step': jnp.int32(0)}
  # The state and the training set are split by rows where they divide evenly (the
  # training set is padded to make it so; its padding is never sampled).
  state_sharding = sharding_lib.row_sharding(mesh, state)
  state = sharding_lib.place_tree(state, state_sharding)
  x_train = sharding_lib.pad_rows(np.asarray(pool.x_train, np.float32), mesh.size)
  x_train = sharding_lib.place(x_train, sharding_lib.row_sharding(mesh, x_train))
  index = data_lib.build_class_index(pool.y_train, ds.num_classes)
  index = sharding_lib.place_tree(index, jax.tree_util.tree_map(lambda _: replicated,
                                                                index))
  base_key = sharding_lib.place(base_key, replicated)
  step = make_step(param, objective, ctx, tx, config.objective.batch_real)
  step_fn = jax.jit(sharding_lib.traced_on(mesh, step),
                    in_shardings=(state_sharding, replicated, x_train.sharding,
                                  replicated),
                    out_shardings=(state_sharding, replicated), donate_argnums=(0,))
  return Setup(ds, param, objective, ctx, state, step_fn, base_key, x_train, index, mesh)


# ----------------------------------------------------------------------------------
# Resume: the latest checkpoint of the workdir, if any.
# ----------------------------------------------------------------------------------


def checkpoint_manager(workdir: epath.PathLike) -> ocp.CheckpointManager:
  """The run's checkpoints, ``workdir/checkpoints``: the last two kept, synchronous.

  Every process of a multi-process run calls it, and saves and restores through it
  (orbax writes each process's shards and synchronises them). ``workdir`` may be a URL
  (``gs://...``): it reaches orbax as an ``epath.Path``, unchanged.
  """
  return ocp.CheckpointManager(
      as_path(workdir) / 'checkpoints',
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                           enable_async_checkpointing=False))


def resume(ckpt, state, selected, metrics_path: epath.PathLike):
  """(state, selected) of the latest checkpoint, or as given when there is none.

  The metric lines of the steps after the checkpoint are dropped: they will be redone.
  """
  if ckpt.latest_step() is None:
    return state, selected
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct,
                                    _bundle(state, selected))
  restored = ckpt.restore(ckpt.latest_step(), args=ocp.args.StandardRestore(abstract))
  if selected is not None:
    selected = restored.pop('selected')
  state = restored
  if jax.process_index() == 0:
    _truncate_metrics(metrics_path, int(state['step']))
    print(f'resumed from checkpoint at step {int(state["step"])}', flush=True)
  return state, selected


# ----------------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------------

# A progress line at least this often, whatever ``log_every`` says: slow steps (DC's
# 50 inner epochs, MTT's long unrolls) must not leave a long run silent.
PROGRESS_SECONDS = 60.0


class Progress:
  """The loop's progress lines (main process only).

  The first step reports its time (it includes warm-up) and starts the clock; later
  steps print every ``log_every`` steps, at the last, and at least every
  ``PROGRESS_SECONDS``, with the rate and the ETA.
  """

  def __init__(self, steps: int, log_every: int, first: int):
    self.steps, self.log_every, self.first = steps, log_every, first
    self.t_last = self.t_print = time.time()
    self.s_last = first

  def report(self, s: int, metrics: dict, mlog) -> None:
    """After step index ``s`` (``s + 1`` steps done) with its ``metrics``."""
    done, steps = s + 1, self.steps
    now = time.time()
    if s == self.first:   # the first step includes warm-up: report it, start the clock
      print(f'step {done}/{steps}  loss {metrics["loss"]:.4g}  '
            f'(first step {now - self.t_last:.1f} s)', flush=True)
      self.t_last, self.s_last, self.t_print = now, done, now
    elif (done % self.log_every == 0 or done == steps
          or now - self.t_print >= PROGRESS_SECONDS):
      mlog.flush()
      self.t_print = now
      rate = (done - self.s_last) / max(now - self.t_last, 1e-9)
      terms = '  '.join(f'{k} {v:.4g}' for k, v in metrics.items())
      print(f'step {done}/{steps}  {terms}  {rate:.2f} steps/s  '
            f'ETA {_format_seconds((steps - done) / max(rate, 1e-9))}', flush=True)


def compile_ahead(run: Setup, state, t_loop: float):
  """The step compiled before the loop, so the heap the compiler freed can go back to
  the OS before the step's own buffers are allocated (host_memory: for MTT on MNIST
  this is the difference between +1.6 and +1.2 GB of peak resident memory)."""
  step_fn = run.step_fn.lower(state, run.base_key, run.x_train, run.index).compile()
  host_memory.release_free_memory()
  if jax.process_index() == 0:
    print(f'compiled the distillation step in {time.time() - t_loop:.1f} s',
          flush=True)
  return step_fn


def check_finite(metrics: dict, done: int, ckpt, workdir: epath.PathLike) -> None:
  """Raises NonFiniteLossError naming the step, the term and the last checkpoint."""
  bad = _first_non_finite(metrics)
  if bad is None:
    return
  last = ckpt.latest_step()
  kept = (f'the last good checkpoint is step {last} in {workdir}/checkpoints'
          if last is not None else 'no checkpoint had been saved yet')
  raise NonFiniteLossError(
      f'non-finite {bad} ({metrics[bad]}) at step {done}; stopped, {kept}')


def distill_loop(config, run: Setup, state, selected, score, ckpt,
                 workdir: epath.PathLike, metrics_path: epath.PathLike, t_loop: float):
  """Steps from the state's step to ``config.steps``: metrics, model selection,
  checkpoints and progress lines. Returns (state, selected)."""
  steps, first = config.steps, int(state['step'])
  is_main = jax.process_index() == 0
  select_every = parse_model_selection(config).every if score is not None else 0
  step_fn = compile_ahead(run, state, t_loop) if first < steps else run.step_fn
  progress = Progress(steps, config.log_every, first)
  # metrics.jsonl: process 0's; the others write their (identical) lines nowhere.
  with epath.Path(metrics_path).open('a') if is_main else open(os.devnull, 'w') as mlog:
    for s in range(first, steps):
      state, metrics = step_fn(state, run.base_key, run.x_train, run.index)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      done = s + 1
      check_finite(metrics, done, ckpt, workdir)
      if select_every and (done % select_every == 0 or done == steps):
        metrics['selection_accuracy'] = accuracy = score(state['params'])
        if accuracy > float(selected['accuracy']):
          selected = _selected_copy(state['params'], accuracy, done)
      mlog.write(json.dumps({'step': done, **metrics}) + '\n')
      if done % config.checkpoint_every == 0 or done == steps:
        mlog.flush()
        ckpt.save(done, args=ocp.args.StandardSave(_bundle(state, selected)))
      if is_main:
        progress.report(s, metrics, mlog)
  return state, selected


# ----------------------------------------------------------------------------------
# Results: the last step's set, or the selected one, exported and evaluated.
# ----------------------------------------------------------------------------------


def finish(config, workdir: epath.PathLike, run: Setup, params, selected,
           distill_seconds: float, t_start: float, evaluate: bool) -> dict:
  """Exports and evaluates the set of ``params``; writes and returns the results."""
  is_main = jax.process_index() == 0
  params = jax.tree_util.tree_map(sharding_lib.to_host, params)   # from every process
  syn = run.param.decode(params['syn'])._replace(extras=params['extras'])
  budget = run.param.budget(params['syn'])
  results = {'data': config.data, 'ipc': config.ipc, 'budget_floats': int(budget.floats),
             'budget_ipc': float(budget.ipc), 'budget_detail': budget.detail,
             'steps': config.steps, 'objective': config.objective.name,
             'parameterization': config.parameterization.name,
             'distill_seconds': round(distill_seconds, 2)}
  if selected is not None:
    results.update(selected_step=int(selected['step']),
                   selection_accuracy=float(selected['accuracy']),
                   select=parse_model_selection(config)._asdict())
    if is_main:
      print(f'selected the set of step {int(selected["step"])} (training-set accuracy '
            f'{100 * float(selected["accuracy"]):.2f} %)', flush=True)
  if is_main:
    export_distilled(workdir, config, run.ds, syn, params, results)
  if evaluate:
    results.update(evaluate_distilled(config, run.ds, syn))
  results['seconds'] = round(time.time() - t_start, 2)
  if is_main:
    write_json(epath.Path(workdir) / 'results.json', results)
    if evaluate:
      print(f'distilled: {100 * results["accuracy_mean"]:.2f} ± '
            f'{100 * results["accuracy_std"]:.2f} %   random subset: '
            f'{100 * results["random_baseline_mean"]:.2f} ± '
            f'{100 * results["random_baseline_std"]:.2f} %   ({config.eval.seeds} seeds, '
            f'IPC {config.ipc})', flush=True)
  return results


def train_and_evaluate(config, workdir: epath.PathLike, *, evaluate: bool = True
                       ) -> dict:
  """Runs (or resumes) one distillation described by ``config``; writes ``workdir``
  (a local directory or a URL such as ``gs://bucket/run``).

  In a multi-process run every process calls it with the same arguments; process 0
  writes the outputs, all of them the checkpoints.
  Returns the results dict also written to ``workdir/results.json``.
  """
  t_start = time.time()
  check_config(config)
  mesh = sharding_lib.make_mesh(config.get('mesh'))
  with jax.set_mesh(mesh):   # experts, evaluation and model selection read it
    return _train_and_evaluate(config, workdir, mesh, evaluate, t_start)


def _train_and_evaluate(config, workdir, mesh, evaluate: bool, t_start: float):
  run = setup(config, mesh)
  workdir = as_path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  ckpt = checkpoint_manager(workdir)
  metrics_path = workdir / 'metrics.jsonl'
  # Model selection: the best set so far, starting from the initial one.
  score = make_model_selection_score(config, run.ds, run.param)
  selected = None if score is None else _selected_copy(run.state['params'], -1.0, 0)
  state, selected = resume(ckpt, run.state, selected, metrics_path)
  t_loop = time.time()   # distill_seconds counts the compilation
  state, selected = distill_loop(config, run, state, selected, score, ckpt, workdir,
                                 metrics_path, t_loop)
  ckpt.wait_until_finished()
  ckpt.close()
  distill_seconds = time.time() - t_loop
  params = state['params'] if selected is None else selected['params']
  return finish(config, workdir, run, params, selected, distill_seconds, t_start,
                evaluate)


# ----------------------------------------------------------------------------------
# Outputs.
# ----------------------------------------------------------------------------------


def export_distilled(workdir: epath.PathLike, config, ds, syn, params, results) -> None:
  """Writes ``distilled.npz`` (images, labels, raw parameters), ``distilled.png`` and,
  for a poster, ``poster.png`` (process 0 only: ``finish``)."""
  workdir = epath.Path(workdir)
  images = np.asarray(syn.images)
  labels = np.asarray(syn.labels)
  arrays = {'images': images, 'labels': labels}
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  for path, leaf in flat:
    name = '/'.join(str(getattr(p, 'key', getattr(p, 'idx', p))) for p in path)
    arrays[f'param/{name}'] = np.asarray(leaf)
  meta = {'data': config.data, 'zca': config.get('zca', 'none'), 'ipc': config.ipc,
          'label_loss': config.eval.get('loss', 'ce'), **results}
  for k, v in syn.extras.items():
    if np.ndim(v) == 0:
      meta[k] = float(v)
  arrays['meta_json'] = np.asarray(json.dumps(meta))
  write_npz(workdir / 'distilled.npz', **arrays)
  pixels = data_lib.denormalize(ds, images)
  save_grid_png(workdir / 'distilled.png', pixels,
                np.argmax(labels, axis=-1), ds.num_classes)
  poster = params['syn'].get('poster')
  if poster is not None:   # PoDD: the poster itself, beside the grid of its patches
    poster = np.asarray(poster)
    if config.get('zca', 'none') == 'none':
      poster = data_lib.denormalize(ds, poster)
    else:   # a ZCA is defined on image-sized inputs only: show the poster min-max scaled
      poster = (poster - poster.min()) / max(float(np.ptp(poster)), 1e-12)
    save_grid_png(workdir / 'poster.png', poster[None], np.zeros(1, int), 1,
                  min_cell=256)   # a digits poster is 11x29 pixels: enlarge it to look at


def evaluate_distilled(config, ds, syn) -> dict:
  """The evaluation protocol on the distilled set and on a random real subset."""
  base_cfg = eval_config(config)._replace(loss='ce')   # real images, hard labels
  cfg = protocol_for(config, syn)
  model = models_lib.get_model(config.eval.model, ds.num_classes,
                               image_shape=tuple(ds.x_train.shape[1:]))
  key = jax.random.key(config.seed + 1)
  is_main = jax.process_index() == 0
  what = f'{config.eval.seeds} x {config.eval.model}, {cfg.epochs} epochs'
  if is_main:   # one compiled program per set: progress at its start and end
    print(f'evaluating the distilled set ({what}) ...', flush=True)
  t0 = time.time()
  res = eval_lib.evaluate_synset(key, model, syn.images, syn.labels, ds.x_test,
                                 ds.y_test, num_seeds=config.eval.seeds, cfg=cfg,
                                 num_classes=ds.num_classes)
  t_syn = time.time() - t0
  if is_main:
    print(f'  {100 * res["accuracy_mean"]:.2f} ± {100 * res["accuracy_std"]:.2f} % in '
          f'{_format_seconds(t_syn)}; the random real subset next (ETA about '
          f'{_format_seconds(t_syn)})', flush=True)
  out = {'accuracy_mean': res['accuracy_mean'], 'accuracy_std': res['accuracy_std'],
         'accuracies': res['accuracies'], 'eval_model': config.eval.model,
         'eval_seeds': config.eval.seeds, 'eval': cfg._asdict()}
  baseline_ipc = max(1, int(round(config.ipc)))
  images, labels = eval_lib.random_subset(config.seed, ds, baseline_ipc)
  base = eval_lib.evaluate_synset(key, model, images, labels, ds.x_test, ds.y_test,
                                  num_seeds=config.eval.seeds,
                                  cfg=base_cfg, num_classes=ds.num_classes)
  out.update(random_baseline_mean=base['accuracy_mean'],
             random_baseline_std=base['accuracy_std'],
             random_baseline_accuracies=base['accuracies'],
             eval_seconds=round(time.time() - t0, 2))
  return out
