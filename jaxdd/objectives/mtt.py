"""The trajectory-matching objective from a config: expert buffer, context, DATM init.

``make_mtt`` wires the pure loss of ``jaxdd.objectives.trajectory`` (MTT, DATM and PAD
by options) into the ``Objective`` interface: ``prepare`` loads or trains the expert
buffer (``build_buffer``, cached by ``jaxdd.pretrain.expert_store``) and builds the student's
apply functions (``trajectory_ctx``); DATM's initialisation from correctly classified
real images with the experts' logits as labels is ``expert_label_init``.
"""

import functools

import jax
import jax.numpy as jnp

from jaxdd.augment import dsa as dsa_lib
from jaxdd import models as models_lib
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Objective
from jaxdd.objectives import trajectory as tr
from jaxdd.pretrain import difficulty
from jaxdd.pretrain import expert_store
from jaxdd.pretrain import experts


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
  """DATM's initialisation (METHODS.md DATM 2-3; ``DATM.py`` ``samples_predicted_correctly``).

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


def build_buffer(ds, config):
  """Loads or trains (``expert_store.load_or_train``) the experts of config.objective.

  ``objective.experts``: num_experts, epochs, lr (0.01), momentum (0), weight_decay
  (0), batch_size (256), dsa (True), dsa_strategy, seed (config.seed), cache_dir
  ('experts'), schedule ('none' | 'pad'). For 'pad', ``objective.pad`` holds the
  scheduler's initial_ratio, add_end_epoch, remove_epochs, remove_fractions
  (``difficulty.pad_schedule``) and el2n_nets, el2n_epochs (``difficulty.el2n_scores``).
  """
  e = config.objective.experts
  schedule_name = e.get('schedule', 'none')
  if schedule_name not in ('none', 'pad'):
    raise ConfigError(f'objective.experts.schedule must be one of none, pad, '
                      f'got {schedule_name!r}')
  image_shape = tuple(ds.x_train.shape[1:])
  model = buffer_model(ds, config)
  seed = e.get('seed', config.get('seed', 0))
  cfg = experts.ExpertConfig(
      num_experts=e.num_experts, epochs=e.epochs, lr=e.get('lr', 0.01),
      momentum=e.get('momentum', 0.0), weight_decay=e.get('weight_decay', 0.0),
      batch_size=e.get('batch_size', 256), dsa=e.get('dsa', True),
      dsa_strategy=e.get('dsa_strategy', dsa_lib.DEFAULT_STRATEGY), seed=seed)
  schedule = None
  if schedule_name == 'pad':
    pad = dict(config.objective.get('pad', {}))
    nets, epochs = pad.pop('el2n_nets', 3), pad.pop('el2n_epochs', 2)
    for k in set(pad) - set(tr.PAD_DEFAULTS):
      raise ConfigError(f'objective.pad.{k} is unknown; accepted: el2n_nets, el2n_epochs, '
                        f'{", ".join(tr.PAD_DEFAULTS)}')
    difficulty.check_schedule_args(**{**tr.PAD_DEFAULTS, **pad})

    @functools.cache   # scored only if the experts are trained, not on a cache hit
    def pad_schedule():
      scores = difficulty.el2n_scores(model, image_shape, ds.x_train, ds.y_train,
                                      ds.num_classes, jax.random.key(seed),
                                      num_nets=nets, epochs=epochs)
      return difficulty.pad_schedule(
          difficulty.class_orderings(scores, ds.y_train, ds.num_classes), **pad)

    schedule = lambda epoch: pad_schedule()(epoch)
    # The cache key must identify the schedule (the function is not hashed).
    schedule_name = 'pad_' + '_'.join(f'{k}{v}' for k, v in sorted(
        {**pad, 'el2n_nets': nets, 'el2n_epochs': epochs}.items()))
  return expert_store.load_or_train(e.get('cache_dir', 'experts'), model, image_shape, ds.name,
                               ds.x_train, ds.y_train, ds.num_classes, cfg,
                               model_config=dict(config.model), schedule=schedule,
                               schedule_name=schedule_name)


def make_mtt(config) -> Objective:
  """The trajectory-matching objective (MTT; DATM and PAD by options, module doc).

  Reads ``config.objective`` (MTTOptions fields, validated here before anything is
  compiled, ``experts`` for ``build_buffer``, and ``init_from_experts`` for DATM's
  initialisation) and ``config.model``.
  ``init_extras`` gives {'syn_lr': lr_teacher}, learned with the 'extras' optimizer.

  Raises:
    ConfigError: naming the field and the accepted values.
  """
  opts = tr.mtt_options(config.objective)
  if opts.grad_chunks > 1 and (config.get('model') or {}).get('norm') == 'batchnorm':
    raise ConfigError(
        f'objective.grad_chunks={opts.grad_chunks} needs a per-sample student: '
        "model.norm='batchnorm' would normalise each sub-batch by itself; use "
        'grad_chunks=1 or another norm')

  def prepare(ds, config):
    buffer = build_buffer(ds, config)
    tr.check_buffer(buffer.trajectories.shape, opts)
    return trajectory_ctx(buffer_model(ds, config), buffer, tuple(ds.x_train.shape[1:]))

  def loss(syn, real, key, ctx, step, obj_state):
    del real, obj_state   # MTT matches expert trajectories, not real batches
    return tr.trajectory_loss(syn, key, ctx['trajectories'], ctx['apply_train'], step, opts)

  def init_extras(ctx, config):
    return {'syn_lr': jnp.asarray(opts.lr_teacher, jnp.float32)}

  # DATM: initialise from real images the experts classify correctly, labels = their
  # logits (the loop's ``init_filter`` hook; the parameterization must learn labels).
  init_filter = expert_label_init if config.objective.get('init_from_experts', False) \
      else None
  return Objective(prepare, loss, init_extras=init_extras, init_filter=init_filter)


def buffer_model(ds, config):
  """The student model of ``config.model`` for ``ds`` (the experts' architecture)."""
  return models_lib.from_config(config.model, ds.num_classes, tuple(ds.x_train.shape[1:]))
