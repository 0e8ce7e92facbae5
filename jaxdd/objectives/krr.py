"""Kernel ridge regression objectives: KIP and FRePo (docs/methods.md §1 "KIP", "FRePo").

Both fit the synthetic set (X_s, Y_s) by kernel ridge regression and score the fit on a
class-balanced real batch (X_t, Y_t):

    Ŷ_t = K_ts (K_ss + λ·tr(K_ss)/n_s · I)⁻¹ Y_s,       L = ½ · mean((Ŷ_t − Y_t)²)

with the trace-scaled ridge of ``google-research:kip/KIP.ipynb`` (λ = 1e-6) and centred
one-hot targets Y_t = onehot − 1/C (KIP, ICLR 2021, Eq. 5-6 and §3; FRePo, NeurIPS
2022, Eq. 3). They differ in the kernel:

  * KIP: the infinite-width NTK or NNGP of a ConvNet / FC network (neural-tangents,
    through ``jaxdd.nt_compat``), or jaxdd's own empirical NTK J(x)·J(x')ᵀ of a network
    freshly initialised every step (no neural-tangents).
  * FRePo: the linear kernel of the last-layer features, K = F Fᵀ, of one network of a
    pool that is trained online on the synthetic set (``make_frepo``).

Synthetic labels are ``syn.labels`` after ``syn_label_targets``: the pixel and FreD
parameterizations give one-hot rows (fixed or learned, initialised one-hot), and the
objective turns them into KIP's centred one-hot init (``syn_labels='center'``: −1/C) or
FRePo's (``'frepo'``: (onehot − 1/C)/√(C/10)). A shift and a positive scale are an
exact reparameterization of learned labels, so learning them here is learning KIP's or
FRePo's labels. A parameterization that already stores centred labels uses 'as_is'.

Where jaxdd differs from the authors' code:
  * float32 everywhere (KIP enables x64; see ``jaxdd.nt_compat`` for why not here).
  * KIP's loss uses the prediction of every output; its accuracy metric is reported as
    ``aux['krr_acc']`` (argmax agreement on the real batch), as the notebook prints.
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdd import sharding
from jaxdd.train import members, optim
from jaxdd.train import losses as losses_lib
from jaxdd.train import step as step_lib
from jaxdd import models as models_lib
from jaxdd import nt_compat
from jaxdd.config_fields import (non_negative_int, non_negative_num, one_of, positive_int,
                                 positive_num, read_section)
from jaxdd.errors import ConfigError
from jaxdd.interfaces import Objective
from jaxdd.objectives import dm

KIP_KERNELS = ('nt_ntk', 'nt_nngp', 'empirical_ntk')
SYN_LABELS = ('center', 'frepo', 'as_is')
POOL_UPDATES = ('all', 'sampled')

# ----------------------------------------------------------------------------------
# Kernel ridge regression and its pieces.
# ----------------------------------------------------------------------------------


def krr_predict(k_ts: jax.Array, k_ss: jax.Array, y_s: jax.Array,
                reg: float = 1e-6) -> jax.Array:
  """KRR prediction K_ts (K_ss + reg·tr(K_ss)/n·I)⁻¹ y_s (docs/methods.md KIP; KIP Eq. 5).

  The ridge is scaled by the mean eigenvalue tr(K_ss)/n, so ``reg`` is scale-free (KIP's
  ``loss_fn``). Solved by a Cholesky factorisation, as KIP's ``solve(assume_a='pos')``.
  In float32 an ill-conditioned K_ss gives NaN: raise ``reg`` (the loop then stops with
  an error naming the step).

  Args:
    k_ts: [n_t, n_s] kernel between targets and support (synthetic) points.
    k_ss: [n_s, n_s] support kernel, symmetric positive semi-definite.
    y_s: [n_s, C] support labels.
    reg: λ > 0.

  Returns:
    [n_t, C] predictions.
  """
  n = k_ss.shape[0]
  k_reg = k_ss + reg * jnp.trace(k_ss) / n * jnp.eye(n, dtype=k_ss.dtype)
  factor = jax.scipy.linalg.cho_factor(k_reg, lower=True)
  return k_ts @ jax.scipy.linalg.cho_solve(factor, y_s)


def centred_one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
  """KIP/FRePo regression targets: one_hot(labels) − 1/C, float32 [..., C]."""
  return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) - 1.0 / num_classes


def syn_label_targets(labels: jax.Array, mode: str) -> jax.Array:
  """The synthetic labels KRR regresses on, from the parameterization's [N, C] rows.

  'center': labels − 1/C (KIP's init for one-hot rows); 'frepo': (labels − 1/C)/√(C/10)
  (FRePo's init, docs/methods.md); 'as_is': unchanged.
  """
  c = labels.shape[-1]
  if mode == 'as_is':
    return labels
  centred = labels - 1.0 / c
  return centred if mode == 'center' else centred / jnp.sqrt(c / 10.0)


def krr_loss(k_ts, k_ss, y_s, y_t, reg: float = 1e-6):
  """½·mean((krr_predict(k_ts, k_ss, y_s, reg) − y_t)²) and the argmax accuracy.

  KIP's ``loss_fn``: the mean runs over targets and outputs.

  Returns:
    (loss scalar, accuracy scalar).
  """
  pred = krr_predict(k_ts, k_ss, y_s, reg)
  loss = 0.5 * jnp.mean((pred - y_t) ** 2)
  acc = jnp.mean(jnp.argmax(pred, -1) == jnp.argmax(y_t, -1))
  return loss, acc


def label_margin(y: jax.Array) -> jax.Array:
  """FRePo's label margin, mean over rows of min(top1 − top2, 1/C) of y [N, C].

  The loss adds ``−weight · label_margin`` (docs/methods.md FRePo): it pushes every learned
  label's largest entry above its second by up to 1/C and no further.
  """
  top2 = jax.lax.top_k(y, 2)[0]
  return jnp.mean(jnp.minimum(top2[:, 0] - top2[:, 1], 1.0 / y.shape[-1]))


def empirical_ntk(apply_fn, params, x1: jax.Array, x2: jax.Array) -> jax.Array:
  """Empirical NTK of a finite network, mean over its outputs (neural-tangents'
  ``trace_axes=(-1,)`` convention):

      K[i, j] = (1/C) Σ_c ⟨∂f_c(x1_i)/∂θ, ∂f_c(x2_j)/∂θ⟩        (KIP §2; Jacot et al.)

  Computed without forming the [n1, C, P] Jacobian: for each x2_j (``lax.map``, the
  memory of one), its Jacobian rows J_j [C, P] (reverse mode) become tangents of C
  forward-mode products J(x1)·J_jᵀ over the whole x1 batch. Differentiable in x1, x2.

  Args:
    apply_fn: (params, x [n, ...]) -> outputs [n, C].
    params: a pytree of parameters θ.
    x1: [n1, ...]; x2: [n2, ...].

  Returns:
    [n1, n2].
  """
  def column(x):   # one x2 image -> K[:, j] of shape [n1]
    jac = jax.jacrev(lambda p: apply_fn(p, x[None])[0])(params)   # leaves [C, ...]
    num_out = jax.tree_util.tree_leaves(jac)[0].shape[0]

    def one_output(tangent, c):
      _, out = jax.jvp(lambda p: apply_fn(p, x1), (params,), (tangent,))
      return out[:, c]

    return jnp.mean(jax.vmap(one_output)(jac, jnp.arange(num_out)), axis=0)

  return jax.lax.map(column, x2).T


# ----------------------------------------------------------------------------------
# KIP.
# ----------------------------------------------------------------------------------


class KipConfig(NamedTuple):
  """The fields of ``config.objective`` for KIP (defaults: ``google-research:kip``).

  Attributes:
    kernel: 'nt_ntk' or 'nt_nngp' (neural-tangents' infinite-width kernels of the
      network below) or 'empirical_ntk' (jaxdd's, of ``config.model`` initialised
      afresh from the step's key every step).
    reg: λ > 0 of the trace-scaled ridge (``krr_predict``).
    syn_labels: 'center', 'frepo' or 'as_is' (``syn_label_targets``).
    kernel_arch, kernel_depth, W_std, b_std: the neural-tangents network
      (``nt_compat.convnet_kernel_fn``); depth 0 is accepted for 'fc' only.
  """
  kernel: str = 'nt_ntk'
  reg: float = 1e-6
  syn_labels: str = 'center'
  kernel_arch: str = 'conv'
  kernel_depth: int = 3
  W_std: float = 2 ** 0.5
  b_std: float = 0.1


KIP_CHECKS = {'kernel': one_of(KIP_KERNELS), 'reg': positive_num(),
              'syn_labels': one_of(SYN_LABELS), 'kernel_arch': one_of(nt_compat.ARCHS),
              'kernel_depth': non_negative_int(), 'W_std': positive_num(),
              'b_std': non_negative_num()}
SHARED_FIELDS = ('name', 'batch_real')   # the registry's and the loop's


def parse_kip(section: Mapping | None) -> KipConfig:
  """``KipConfig`` from ``config.objective``, checked.

  Raises:
    ConfigError: an unknown field or a value out of range, naming ``objective.<field>``.
  """
  cfg = read_section(section, KipConfig, 'objective', KIP_CHECKS, shared=SHARED_FIELDS)
  if cfg.kernel_arch == 'conv' and cfg.kernel_depth == 0:
    raise ConfigError('objective.kernel_depth must be an integer >= 1 for '
                      'kernel_arch=conv (0 only for fc), got 0')
  return cfg


def check_kip_environment(cfg: KipConfig) -> None:
  """A neural-tangents kernel needs the package, and float32 for its conv kernel.

  Raises:
    ConfigError: a conv kernel with ``jax_enable_x64`` on (it crashes jaxlib ≥ 0.8).
    ImportError: an 'nt_*' kernel without neural-tangents installed.
  """
  if not cfg.kernel.startswith('nt_'):
    return
  if cfg.kernel_arch == 'conv' and jax.config.jax_enable_x64:
    raise ConfigError(f'objective.kernel={cfg.kernel!r} with kernel_arch=conv needs '
                      'float32: jax_enable_x64 is on (jit of its conv kernel crashes '
                      'jaxlib >= 0.8); turn x64 off or use kernel_arch=fc / '
                      'kernel=empirical_ntk')
  nt_compat.import_neural_tangents()   # a clear ImportError now, not at trace time


def kip_prepare(cfg: KipConfig, ds, config) -> dict:
  """ctx: the network of ``config.model`` ('empirical_ntk') or neural-tangents'
  ``kernel_fn``; refuses a conv depth that halves the images below 1x1."""
  if cfg.kernel == 'empirical_ntk':
    return dm.prepare_model(ds, config)
  h, w = ds.x_train.shape[1:3]
  depth = cfg.kernel_depth
  if cfg.kernel_arch == 'conv' and min(h, w) < 2 ** depth:
    most = int(min(h, w)).bit_length() - 1
    raise ConfigError(f'objective.kernel_depth={depth} halves {h}x{w} images below 1x1 '
                      f'(kernel_arch=conv); accepted: at most {most}')
  _, _, kernel_fn = nt_compat.convnet_kernel_fn(depth, arch=cfg.kernel_arch,
                                                W_std=cfg.W_std, b_std=cfg.b_std)
  return {'kernel_fn': kernel_fn}


def kip_kernels(cfg: KipConfig, x_t, x_s, key, ctx):
  """(K_ts, K_ss) of the configured kernel; 'empirical_ntk' initialises its network
  from ``key``."""
  if cfg.kernel == 'empirical_ntk':
    model = ctx['model']
    variables = models_lib.init_model(model, key, ctx['image_shape'])

    def apply_fn(params, x):
      return models_lib.apply_model(model, {**variables, 'params': params}, x)[0]

    params = variables['params']
    return (empirical_ntk(apply_fn, params, x_t, x_s),
            empirical_ntk(apply_fn, params, x_s, x_s))
  get = cfg.kernel[len('nt_'):]
  return ctx['kernel_fn'](x_t, x_s, get), ctx['kernel_fn'](x_s, x_s, get)


def kip_loss(cfg: KipConfig, syn, real, key, ctx, step, state):
  """½·MSE of the KRR prediction on the flattened real batch: (L, {'krr', 'krr_acc'})."""
  del step, state
  num_classes = syn.labels.shape[-1]
  x_t = real.images.reshape((-1,) + real.images.shape[2:]).astype(jnp.float32)
  x_t = sharding.shard_rows(x_t)   # K_ts's rows over the devices
  y_t = centred_one_hot(real.labels.reshape(-1), num_classes)
  x_s = syn.images.astype(jnp.float32)
  y_s = syn_label_targets(syn.labels, cfg.syn_labels)
  k_ts, k_ss = kip_kernels(cfg, x_t, x_s, key, ctx)
  value, acc = krr_loss(k_ts, k_ss, y_s, y_t, cfg.reg)
  return value, {'krr': value, 'krr_acc': acc}


def make_kip(config) -> Objective:
  """KIP (Nguyen et al., ICLR 2021 / NeurIPS 2021; docs/methods.md §1 KIP).

  loss = ½·MSE(krr_predict(K_ts, K_ss, Y_s), centred one-hot of the real batch), with
  the real batch [K, n, H, W, C] flattened to K·n targets (KIP: 5000, class-balanced).

  Reads ``config.objective`` (``KipConfig``); 'empirical_ntk' uses ``config.model``.
  The parameterization provides labels [N, C]: one-hot rows (hard, or learned with
  ``parameterization.learn_labels`` for KIP's label learning), which
  ``syn_labels='center'`` turns into KIP's centred one-hot (module doc).

  Raises:
    ConfigError: a field out of range (naming ``objective.<field>``), or a neural-tangents
      conv kernel with ``jax_enable_x64`` on (it crashes jaxlib ≥ 0.8).
    ImportError: an 'nt_*' kernel without neural-tangents installed.
  """
  cfg = parse_kip(config.objective)
  check_kip_environment(cfg)
  return Objective(functools.partial(kip_prepare, cfg), functools.partial(kip_loss, cfg))


# ----------------------------------------------------------------------------------
# FRePo.
# ----------------------------------------------------------------------------------


class FrepoConfig(NamedTuple):
  """The fields of ``config.objective`` for FRePo (defaults: docs/methods.md §1 FRePo).

  Attributes:
    pool_size: networks in the pool.
    max_age: Adam steps after which a member is re-initialised.
    lr_net: the members' Adam learning rate.
    reg: λ > 0 of the trace-scaled ridge (``krr_predict``).
    pool_update: 'all' (every member stepped once per image update) or 'sampled'
      (only the member the loss used); see ``make_frepo``.
    label_margin_weight: the weight of ``label_margin`` in the loss (≥ 0).
    syn_labels: 'center', 'frepo' or 'as_is' (``syn_label_targets``).
  """
  pool_size: int = 10
  max_age: int = 100
  lr_net: float = 3e-4
  reg: float = 1e-6
  pool_update: str = 'all'
  label_margin_weight: float = 1.0
  syn_labels: str = 'frepo'


FREPO_CHECKS = {'pool_size': positive_int(), 'max_age': positive_int(),
                'lr_net': positive_num(), 'reg': positive_num(),
                'pool_update': one_of(POOL_UPDATES),
                'label_margin_weight': non_negative_num(),
                'syn_labels': one_of(SYN_LABELS)}


def parse_frepo(section: Mapping | None) -> FrepoConfig:
  """``FrepoConfig`` from ``config.objective``, checked.

  Raises:
    ConfigError: an unknown field or a value out of range, naming ``objective.<field>``.
  """
  return read_section(section, FrepoConfig, 'objective', FREPO_CHECKS,
                      shared=SHARED_FIELDS)


def frepo_optimizer(cfg: FrepoConfig) -> optax.GradientTransformation:
  """The members' optimizer: Adam(``lr_net``), no weight decay."""
  return optim.adam(cfg.lr_net)


def fresh_member(cfg: FrepoConfig, key, ctx):
  """A member's fresh (variables, Adam state), the network initialised from ``key``."""
  return tuple(step_lib.init_state(ctx['model'], frepo_optimizer(cfg), key,
                                   ctx['image_shape']))


def frepo_init_state(cfg: FrepoConfig, key, ctx) -> dict:
  """The pool: fresh members from ``split(split(key)[0], pool_size)``, staggered ages
  ⌊i·max_age/pool_size⌋, and the first loss's member drawn with ``split(key)[1]``."""
  init_key, member_key = jax.random.split(key)
  variables, opt_state = jax.vmap(lambda k: fresh_member(cfg, k, ctx))(
      jax.random.split(init_key, cfg.pool_size))
  age = (jnp.arange(cfg.pool_size) * cfg.max_age // cfg.pool_size).astype(jnp.int32)
  member = jax.random.randint(member_key, (), 0, cfg.pool_size, dtype=jnp.int32)
  return {'variables': variables, 'opt_state': opt_state, 'age': age, 'member': member}


def frepo_features(model, variables, x):
  """F = the network's 'embedding' [n, D] of x, eval mode."""
  (_, feats), _ = models_lib.apply_model(model, variables, x, train=False, features=True)
  return feats['embedding']


def frepo_loss(cfg: FrepoConfig, syn, real, key, ctx, step, state):
  """KRR on the features of the member ``state['member']``, minus the label margin:
  (L, {'krr', 'krr_acc', 'label_margin'})."""
  del key, step
  model = ctx['model']
  m = state['member']
  variables = jax.tree_util.tree_map(lambda v: v[m], state['variables'])
  num_classes = syn.labels.shape[-1]
  x_t = real.images.reshape((-1,) + real.images.shape[2:])
  y_t = centred_one_hot(real.labels.reshape(-1), num_classes)
  y_s = syn_label_targets(syn.labels, cfg.syn_labels)
  f_t = frepo_features(model, variables, sharding.shard_rows(x_t))   # kernel rows
  f_s = frepo_features(model, variables, syn.images)
  krr, acc = krr_loss(f_t @ f_s.T, f_s @ f_s.T, y_s, y_t, cfg.reg)
  margin = label_margin(y_s)
  value = krr - cfg.label_margin_weight * margin
  return value, {'krr': krr, 'krr_acc': acc, 'label_margin': margin}


def frepo_member_step(model, tx, variables, opt_state, images, targets):
  """One Adam step of a pool member on ``label_loss(logits, targets, 'mse')`` over the
  whole synthetic set, batch norm in training mode (``train.step.supervised_step``):
  (variables, opt_state)."""
  state, _, _ = step_lib.supervised_step(
      model, tx, step_lib.TrainState(variables, opt_state), images,
      lambda logits: losses_lib.label_loss(logits, targets, 'mse'))
  # Keep the carried dtypes (float64 synthetic images would promote BN statistics).
  return step_lib.cast_like(state.variables, variables), state.opt_state


def frepo_member_update(cfg: FrepoConfig, variables, opt_state, age, key, images, targets,
                        ctx):
  """A member re-initialised from ``key`` at ``age >= max_age`` (age 0), else
  ``frepo_member_step`` (age + 1): (variables, opt_state, age)."""
  def reset(_):
    fresh, fresh_opt = fresh_member(cfg, key, ctx)
    return fresh, fresh_opt, jnp.zeros_like(age)

  def train(_):
    new_vars, new_opt = frepo_member_step(ctx['model'], frepo_optimizer(cfg), variables,
                                          opt_state, images, targets)
    return new_vars, new_opt, age + 1

  return jax.lax.cond(age >= cfg.max_age, reset, train, None)


def frepo_update_state(cfg: FrepoConfig, syn, real, key, ctx, step, state):
  """The pool after an image update (``make_frepo``): members updated with
  ``split(split(key)[0], pool_size)[i]``, the next member drawn with ``split(key)[1]``."""
  del real, step
  reset_key, next_key = jax.random.split(key)
  member_keys = jax.random.split(reset_key, cfg.pool_size)
  targets = syn_label_targets(syn.labels, cfg.syn_labels)
  pool = (state['variables'], state['opt_state'], state['age'])
  update = lambda v, o, a, k: frepo_member_update(cfg, v, o, a, k, syn.images, targets,
                                                  ctx)
  if cfg.pool_update == 'all':
    # The pool's members over the mesh's ``members`` axis, vmapped within a device;
    # ``manual``: the members share the images, and XLA then folds them into the
    # convolutions' feature groups, which its partitioner does not split (every device
    # trained every member: 2.3 vs 0.7 MFLOP per device on 8 vs 1 devices).
    variables, opt_state, age = members.over_members(lambda a: update(*a),
                                                     (*pool, member_keys), 'vmap',
                                                     manual=True)
  else:
    m = state['member']
    one = jax.tree_util.tree_map(lambda x: x[m], pool)
    new = update(*one, member_keys[m])
    variables, opt_state, age = jax.tree_util.tree_map(
        lambda x, n: x.at[m].set(n), pool, new)
  member = jax.random.randint(next_key, (), 0, cfg.pool_size, dtype=jnp.int32)
  return {'variables': variables, 'opt_state': opt_state, 'age': age, 'member': member}


def make_frepo(config) -> Objective:
  """FRePo: neural feature regression with a model pool (Zhou, Nezhadarya & Ba,
  NeurIPS 2022; ``yongchao97/FRePo:lib/datadistillation/frepo.py``; docs/methods.md §1).

  loss = ½·MSE(krr_predict(F_t F_sᵀ, F_s F_sᵀ, Y_s), centred one-hot)
         − label_margin_weight · label_margin(Y_s)

  with F = ``apply_model(..., features=True)`` 'embedding' [n, D] of one network of the
  pool (eval mode: one feature map for targets and support; batch-norm statistics are
  the ones the member's online training keeps).

  The pool (the objective's state, a vmapped pytree): ``pool_size`` networks, each with
  its Adam(``lr_net``) state and an age (Adam steps since its initialisation). Ages
  start staggered, age_i = ⌊i·max_age/pool_size⌋, so resets are spread over time (a
  jaxdd choice). ``update_state``, with the updated synthetic set held constant:

    * members to train: all (``pool_update='all'``: docs/methods.md's "each stepped once per
      iteration") or only the one the loss used (``'sampled'``: the paper's Algorithm 1
      as we read it; the paper is not in papers/);
    * a member of age ≥ ``max_age`` is re-initialised (fresh params from
      ``split(split(key)[0], pool_size)[i]``, fresh Adam state, age 0); the others take
      one Adam step on ``train.losses.label_loss(logits, Y_s, 'mse')`` over the whole synthetic
      set, batch norm in training mode, age + 1;
    * the member the next loss uses is drawn uniformly with ``split(key)[1]`` (the first
      by ``init_state``), so the loss and ``update_state`` agree on it without a key in
      the state. It is stored as ``obj_state['member']``.

  Reads ``config.objective`` (``FrepoConfig``) and ``config.model`` (FRePo: a ConvNet
  with batch norm, 'convnet_bn').

  Not here: FRePo's LAMB prototype optimiser with cosine decay is the loop's images
  optimizer; its evaluation (BN → identity, Adam + warmup-cosine, MSE) is the protocol's.

  Raises:
    ConfigError: a field out of range, naming ``objective.<field>``.
  """
  cfg = parse_frepo(config.objective)
  return Objective(dm.prepare_model, functools.partial(frepo_loss, cfg),
                   init_state=functools.partial(frepo_init_state, cfg),
                   update_state=functools.partial(frepo_update_state, cfg))
