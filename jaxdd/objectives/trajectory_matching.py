"""The trajectory-matching objective of MTT, DATM and PAD: expert buffer, context, init.

``make_mtt`` (registered as 'mtt') wires the pure loss of
``jaxdd.objectives.trajectory_loss`` (MTT, DATM and PAD by options) into the
``Objective`` interface: ``prepare`` loads or trains the expert buffer
(``build_buffer``, cached by ``jaxdd.pretrain.expert_store``) and builds the student's
apply functions (``trajectory_ctx``); DATM's initialisation from correctly classified
real images with the experts' logits as labels is ``expert_label_init``.

Config: ``config.objective`` is ``trajectory_loss.MTTConfig``; its nested sections
``objective.experts`` (``parse_experts``: how the experts are trained and cached) and
``objective.pad`` (``PadConfig``: PAD's difficulty schedule of the experts' data) are
read here.
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdd import models as models_lib
from jaxdd.config_fields import one_of, plain, positive_int, read_section
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Objective
from jaxdd.objectives import trajectory_loss as tl
from jaxdd.pretrain import difficulty
from jaxdd.pretrain import expert_store
from jaxdd.pretrain import experts

SCHEDULES = ('none', 'pad')


# ----------------------------------------------------------------------------------
# The expert buffer's sections: objective.experts and objective.pad.
# ----------------------------------------------------------------------------------


class BufferConfig(NamedTuple):
  """The fields of ``config.objective.experts`` beside ``experts.ExpertConfig``'s (how
  the experts train: MTT's ``buffer.py`` defaults, 100 experts of 50 epochs, SGD 0.01,
  batch 256, DSA; its ``seed`` defaults to ``config.seed`` here).

  Attributes:
    cache_dir: where ``expert_store`` keeps trained buffers.
    schedule: 'none' (all training data every epoch) or 'pad' (PAD's difficulty
      schedule, ``objective.pad``).
  """
  cache_dir: str = 'experts'
  schedule: str = 'none'


BUFFER_CHECKS = {'schedule': one_of(SCHEDULES)}


class PadConfig(NamedTuple):
  """``config.objective.pad``: PAD's expert data schedule (``schedule='pad'``).

  Attributes:
    initial_ratio, add_end_epoch, remove_epochs, remove_fractions: the scheduler's
      (``difficulty.pad_schedule``, whose defaults these are; checked by
      ``difficulty.check_schedule_args``).
    el2n_nets, el2n_epochs: the difficulty scores' networks and their epochs
      (``difficulty.el2n_scores``).
  """
  initial_ratio: float = 0.75
  add_end_epoch: int = 20
  remove_epochs: tuple = (40, 60)
  remove_fractions: tuple = (0.1, 0.2)
  el2n_nets: int = 3
  el2n_epochs: int = 2


PAD_CHECKS = {'el2n_nets': positive_int(), 'el2n_epochs': positive_int()}
_SCHEDULE_FIELDS = ('initial_ratio', 'add_end_epoch', 'remove_epochs', 'remove_fractions')


def parse_experts(section: Mapping | None, seed: int
                  ) -> tuple[experts.ExpertConfig, BufferConfig]:
  """``config.objective.experts`` as the experts' training config (``seed`` unless the
  section sets one) and the buffer's own fields, checked (``experts.CHECKS``)."""
  values = plain(section) if section is not None else {}
  own = {k: values.pop(k) for k in BufferConfig._fields if k in values}
  values.setdefault('seed', seed)
  cfg = read_section(values, experts.ExpertConfig, experts.SECTION,
                     shared=BufferConfig._fields)
  experts.check_expert_config(cfg)
  return cfg, read_section(own, BufferConfig, experts.SECTION, BUFFER_CHECKS)


def parse_pad(section: Mapping | None) -> PadConfig:
  """``PadConfig`` from ``config.objective.pad``, checked.

  Raises:
    ConfigError: naming ``objective.pad.<field>`` (an unknown one by its full name).
  """
  values = plain(section) if section is not None else {}
  for k in sorted(set(values) - set(PadConfig._fields)):
    raise ConfigError(f'objective.pad.{k} is unknown; accepted: '
                      f'{", ".join(PadConfig._fields)}')
  cfg = read_section(values, PadConfig, 'objective.pad', PAD_CHECKS)
  difficulty.check_schedule_args(*(getattr(cfg, f) for f in _SCHEDULE_FIELDS))
  return cfg


def pad_schedule_name(section: Mapping | None, cfg: PadConfig) -> str:
  """The expert cache's name of a PAD schedule: the fields the config gives and the
  EL2N settings, sorted (the function is not hashed, so the name must identify it).
  Unchanged from earlier versions, so existing caches stay valid."""
  given = {k: v for k, v in dict(section or {}).items() if k in _SCHEDULE_FIELDS}
  named = {**given, 'el2n_nets': cfg.el2n_nets, 'el2n_epochs': cfg.el2n_epochs}
  return 'pad_' + '_'.join(f'{k}{v}' for k, v in sorted(named.items()))


def _section(objective, name: str):
  """The nested section ``objective.<name>``, or None when the config has none."""
  return objective[name] if name in objective else None


# ----------------------------------------------------------------------------------
# The context and DATM's initialisation.
# ----------------------------------------------------------------------------------


def trajectory_ctx(model, buffer, image_shape) -> dict:
  """ctx from a Flax model and an ``experts.Buffer`` (``trajectories``, ``unflatten``).

  The student runs in training mode (MTT's ``student_net.train()``); a batch-norm model
  normalises with batch statistics and its running statistics are discarded.
  """
  state = {k: v for k, v in models_lib.init_model(model, jax.random.key(0),
                                                  image_shape).items() if k != 'params'}
  unflatten = buffer.unflatten

  def apply(theta, x, train):
    variables = {**state, 'params': unflatten(theta)}
    return models_lib.apply_model(model, variables, x, train=train)[0]

  return {'trajectories': jnp.asarray(buffer.trajectories), 'model': model,
          'image_shape': tuple(image_shape),
          'apply_train': lambda theta, x: apply(theta, x, True),
          'apply_eval': lambda theta, x: apply(theta, x, False)}


def expert_label_init(ctx, images, labels, *, select_expert: int = 0,
                      batch_size: int = 256):
  """DATM's initialisation (docs/methods.md DATM 2-3; ``DATM.py`` ``samples_predicted_correctly``).

  With every expert's final checkpoint θ*_{e,T} (eval mode):

      correct[i] = argmax f(θ*_{s,T}; x_i) == y_i          s = select_expert
      logits[i]  = Σ_e c_ei f(θ*_{e,T}; x_i) / Σ_e c_ei,   c_ei = [argmax f(θ*_{e,T}; x_i) == y_i]

  Args:
    ctx: from ``trajectory_ctx`` (uses 'trajectories' [E, T+1, P] and 'apply_eval').
    images: [N, H, W, C]; labels: int [N].
    select_expert: the expert whose final checkpoint picks the images. DATM's code
      uses the first expert of the first buffer file (and moves to the next expert
      only when a class runs short), hence 0.
    batch_size: images per forward.

  Returns:
    (correct bool [N], logits float32 [N, K]). Where no expert is right (DATM divides
    0 by 0 there), the logits are the mean over all experts instead; DATM only
    initialises images that ``correct`` selects, so this never reaches its labels.
  """
  finals = jnp.asarray(ctx['trajectories'])[:, -1]
  apply_eval = ctx['apply_eval']

  @jax.jit
  def run(finals, images, labels):
    def expert_logits(theta):
      return jax.lax.map(lambda x: apply_eval(theta, x[None])[0], images,
                         batch_size=batch_size)
    logits = jax.lax.map(expert_logits, finals).astype(jnp.float32)   # [E, N, K]
    right = jnp.argmax(logits, -1) == labels[None]
    count = right.sum(0)[:, None]
    summed = jnp.sum(jnp.where(right[..., None], logits, 0.0), 0)
    avg = jnp.where(count > 0, summed / jnp.maximum(count, 1), logits.mean(0))
    return right[select_expert], avg

  return run(finals, jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32))


# ----------------------------------------------------------------------------------
# The expert buffer.
# ----------------------------------------------------------------------------------


def buffer_model(ds, config):
  """The student model of ``config.model`` for ``ds`` (the experts' architecture)."""
  return models_lib.from_config(config.model, ds.num_classes, tuple(ds.x_train.shape[1:]))


def pad_data_schedule(ds, model, seed: int, cfg: PadConfig):
  """epoch -> allowed training indices of PAD's schedule; the EL2N scores are computed
  on the first call only (none on a cache hit, where the experts are not trained)."""
  image_shape = tuple(ds.x_train.shape[1:])
  fields = {f: getattr(cfg, f) for f in _SCHEDULE_FIELDS}

  @functools.cache
  def schedule():
    scores = difficulty.el2n_scores(model, image_shape, ds.x_train, ds.y_train,
                                    ds.num_classes, jax.random.key(seed),
                                    num_nets=cfg.el2n_nets, epochs=cfg.el2n_epochs)
    return difficulty.pad_schedule(
        difficulty.class_orderings(scores, ds.y_train, ds.num_classes), **fields)

  return lambda epoch: schedule()(epoch)


def build_buffer(ds, config):
  """Loads or trains (``expert_store.load_or_train``) the experts of
  ``config.objective.experts`` (``parse_experts``); with ``schedule='pad'`` on PAD's
  schedule of ``config.objective.pad`` (``PadConfig``)."""
  objective = config.objective
  cfg, e = parse_experts(_section(objective, 'experts'), config.get('seed', 0))
  pad_section = _section(objective, 'pad')
  pad = parse_pad(pad_section) if e.schedule == 'pad' else None
  image_shape = tuple(ds.x_train.shape[1:])
  model = buffer_model(ds, config)
  schedule, schedule_name = None, e.schedule
  if pad is not None:
    schedule = pad_data_schedule(ds, model, cfg.seed, pad)
    schedule_name = pad_schedule_name(pad_section, pad)
  return expert_store.load_or_train(e.cache_dir, model, image_shape, ds.name,
                                    ds.x_train, ds.y_train, ds.num_classes, cfg,
                                    model_config=dict(config.model), schedule=schedule,
                                    schedule_name=schedule_name)


# ----------------------------------------------------------------------------------
# The objective.
# ----------------------------------------------------------------------------------


def check_model_config(cfg: tl.MTTConfig, model_section) -> None:
  """``grad_chunks`` > 1 needs a per-sample student: refuses a batch-norm one."""
  norm = plain(model_section or {}).get('norm')
  if cfg.grad_chunks > 1 and norm == 'batchnorm':
    raise ConfigError(
        f'objective.grad_chunks={cfg.grad_chunks} needs a per-sample student: '
        "model.norm='batchnorm' would normalise each sub-batch by itself; use "
        'grad_chunks=1 or another norm')


def mtt_prepare(cfg: tl.MTTConfig, ds, config) -> dict:
  """ctx: the expert buffer (checked against the start window) and the student."""
  buffer = build_buffer(ds, config)
  tl.check_buffer(buffer.trajectories.shape, cfg)
  return trajectory_ctx(buffer_model(ds, config), buffer, tuple(ds.x_train.shape[1:]))


def mtt_loss(cfg: tl.MTTConfig, syn, real, key, ctx, step, state):
  """``trajectory_loss.trajectory_loss``; MTT matches expert trajectories, not real
  batches, and keeps no state."""
  del real, state
  return tl.trajectory_loss(syn, key, ctx['trajectories'], ctx['apply_train'], step, cfg)


def mtt_init_extras(cfg: tl.MTTConfig, ctx, config) -> dict:
  """The learned student step size, starting at ``lr_teacher``."""
  del ctx, config
  return {'syn_lr': jnp.asarray(cfg.lr_teacher, jnp.float32)}


def make_mtt(config) -> Objective:
  """The trajectory-matching objective (MTT; DATM and PAD by options, module doc).

  Reads ``config.objective`` (``trajectory_loss.MTTConfig``; its ``experts`` and
  ``pad`` sections, for ``build_buffer``, are checked here too) and ``config.model``.
  ``init_extras`` gives {'syn_lr': lr_teacher}, learned with the 'extras' optimizer.

  Raises:
    ConfigError: naming the field and the accepted values, before anything compiles.
  """
  cfg = tl.parse(config.objective)
  check_model_config(cfg, _section(config, 'model'))
  _, buffer_cfg = parse_experts(_section(config.objective, 'experts'),
                                  config.get('seed', 0))
  if buffer_cfg.schedule == 'pad':
    parse_pad(_section(config.objective, 'pad'))
  # DATM: initialise from real images the experts classify correctly, labels = their
  # logits (the loop's ``init_filter`` hook; the parameterization must learn labels).
  init_filter = expert_label_init if cfg.init_from_experts else None
  return Objective(functools.partial(mtt_prepare, cfg), functools.partial(mtt_loss, cfg),
                   init_extras=functools.partial(mtt_init_extras, cfg),
                   init_filter=init_filter)
