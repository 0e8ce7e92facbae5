"""Kernel ridge regression objectives: KIP and FRePo (METHODS.md §1 "KIP", "FRePo").

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

import jax
import jax.numpy as jnp
import optax

from jaxdd import evaluate as eval_lib
from jaxdd import models as models_lib
from jaxdd import nt_compat
from jaxdd.errors import ConfigError, is_int, is_num
from jaxdd.interfaces import Objective

KIP_KERNELS = ('nt_ntk', 'nt_nngp', 'empirical_ntk')
SYN_LABELS = ('center', 'frepo', 'as_is')
POOL_UPDATES = ('all', 'sampled')

# ----------------------------------------------------------------------------------
# Kernel ridge regression and its pieces.
# ----------------------------------------------------------------------------------


def krr_predict(k_ts: jax.Array, k_ss: jax.Array, y_s: jax.Array,
                reg: float = 1e-6) -> jax.Array:
  """KRR prediction K_ts (K_ss + reg·tr(K_ss)/n·I)⁻¹ y_s (METHODS.md KIP; KIP Eq. 5).

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
  (FRePo's init, METHODS.md); 'as_is': unchanged.
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

  The loss adds ``−weight · label_margin`` (METHODS.md FRePo): it pushes every learned
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
# Config checks (shared).
# ----------------------------------------------------------------------------------


def _choice(obj_cfg, field, default, accepted):
  value = obj_cfg.get(field, default)
  if value not in accepted:
    raise ConfigError(f'objective.{field} must be one of {", ".join(accepted)}, '
                      f'got {value!r}')
  return value


def _positive(obj_cfg, field, default, integer=False, allow_zero=False):
  value = obj_cfg.get(field, default)
  ok_type = is_int(value) if integer else is_num(value)
  if not ok_type or not (value >= 0 if allow_zero else value > 0):
    kind = 'integer' if integer else 'number'
    raise ConfigError(f'objective.{field} must be a {"non-negative" if allow_zero else "positive"}'
                      f' {kind}, got {value!r}')
  return value


def _model(config, ds):
  image_shape = tuple(ds.x_train.shape[1:])
  model = models_lib.from_config(config.model, ds.num_classes, image_shape)
  return model, image_shape


# ----------------------------------------------------------------------------------
# KIP.
# ----------------------------------------------------------------------------------


def make_kip(config) -> Objective:
  """KIP (Nguyen et al., ICLR 2021 / NeurIPS 2021; METHODS.md §1 KIP).

  loss = ½·MSE(krr_predict(K_ts, K_ss, Y_s), centred one-hot of the real batch), with
  the real batch [K, n, H, W, C] flattened to K·n targets (KIP: 5000, class-balanced).

  Reads ``config.objective.{kernel ('nt_ntk'), reg (1e-6), syn_labels ('center'),
  kernel_arch ('conv'), kernel_depth (3), W_std (√2), b_std (0.1)}``; the last four
  shape the neural-tangents network (``nt_compat.convnet_kernel_fn``). 'empirical_ntk'
  uses ``config.model`` instead, initialised afresh from the step's key every step.

  The parameterization provides labels [N, C]: one-hot rows (hard, or learned with
  ``parameterization.learn_labels`` for KIP's label learning), which
  ``syn_labels='center'`` turns into KIP's centred one-hot (module doc).

  Raises:
    ConfigError: a field out of range (naming ``objective.<field>``), or a neural-tangents
      conv kernel with ``jax_enable_x64`` on (it crashes jaxlib ≥ 0.8).
    ImportError: an 'nt_*' kernel without neural-tangents installed.
  """
  obj_cfg = config.objective
  kernel = _choice(obj_cfg, 'kernel', 'nt_ntk', KIP_KERNELS)
  reg = _positive(obj_cfg, 'reg', 1e-6)
  label_mode = _choice(obj_cfg, 'syn_labels', 'center', SYN_LABELS)
  arch = _choice(obj_cfg, 'kernel_arch', 'conv', nt_compat.ARCHS)
  depth = _positive(obj_cfg, 'kernel_depth', 3, integer=True, allow_zero=arch == 'fc')
  w_std = _positive(obj_cfg, 'W_std', 2 ** 0.5)
  b_std = _positive(obj_cfg, 'b_std', 0.1, allow_zero=True)
  if kernel.startswith('nt_'):
    if arch == 'conv' and jax.config.jax_enable_x64:
      raise ConfigError(f'objective.kernel={kernel!r} with kernel_arch=conv needs float32: '
                        'jax_enable_x64 is on (jit of its conv kernel crashes jaxlib >= 0.8);'
                        ' turn x64 off or use kernel_arch=fc / kernel=empirical_ntk')
    nt_compat.import_neural_tangents()   # a clear ImportError now, not at trace time

  def prepare(ds, config):
    if kernel == 'empirical_ntk':
      model, image_shape = _model(config, ds)
      return {'model': model, 'image_shape': image_shape}
    h, w = ds.x_train.shape[1:3]
    if arch == 'conv' and min(h, w) < 2 ** depth:
      raise ConfigError(f'objective.kernel_depth={depth} halves {h}x{w} images below 1x1 '
                        f'(kernel_arch=conv); accepted: at most {int(min(h, w)).bit_length() - 1}')
    _, _, kernel_fn = nt_compat.convnet_kernel_fn(depth, arch=arch, W_std=w_std, b_std=b_std)
    return {'kernel_fn': kernel_fn}

  def kernels(x_t, x_s, key, ctx):
    if kernel == 'empirical_ntk':
      model = ctx['model']
      variables = models_lib.init_model(model, key, ctx['image_shape'])

      def apply_fn(params, x):
        return models_lib.apply_model(model, {**variables, 'params': params}, x)[0]

      params = variables['params']
      return (empirical_ntk(apply_fn, params, x_t, x_s),
              empirical_ntk(apply_fn, params, x_s, x_s))
    get = kernel[len('nt_'):]
    return ctx['kernel_fn'](x_t, x_s, get), ctx['kernel_fn'](x_s, x_s, get)

  def loss(syn, real, key, ctx, step, obj_state):
    del step, obj_state
    num_classes = syn.labels.shape[-1]
    x_t = real.images.reshape((-1,) + real.images.shape[2:]).astype(jnp.float32)
    y_t = centred_one_hot(real.labels.reshape(-1), num_classes)
    x_s = syn.images.astype(jnp.float32)
    y_s = syn_label_targets(syn.labels, label_mode)
    k_ts, k_ss = kernels(x_t, x_s, key, ctx)
    value, acc = krr_loss(k_ts, k_ss, y_s, y_t, reg)
    return value, {'krr': value, 'krr_acc': acc}

  return Objective(prepare, loss)


# ----------------------------------------------------------------------------------
# FRePo.
# ----------------------------------------------------------------------------------


def make_frepo(config) -> Objective:
  """FRePo: neural feature regression with a model pool (Zhou, Nezhadarya & Ba,
  NeurIPS 2022; ``yongchao97/FRePo:lib/datadistillation/frepo.py``; METHODS.md §1).

  loss = ½·MSE(krr_predict(F_t F_sᵀ, F_s F_sᵀ, Y_s), centred one-hot)
         − label_margin_weight · label_margin(Y_s)

  with F = ``apply_model(..., features=True)`` 'embedding' [n, D] of one network of the
  pool (eval mode: one feature map for targets and support; batch-norm statistics are
  the ones the member's online training keeps).

  The pool (the objective's state, a vmapped pytree): ``pool_size`` networks, each with
  its Adam(``lr_net``) state and an age (Adam steps since its initialisation). Ages
  start staggered, age_i = ⌊i·max_age/pool_size⌋, so resets are spread over time (a
  jaxdd choice). ``update_state``, with the updated synthetic set held constant:

    * members to train: all (``pool_update='all'``: METHODS.md's "each stepped once per
      iteration") or only the one the loss used (``'sampled'``: the paper's Algorithm 1
      as we read it; the paper is not in papers/);
    * a member of age ≥ ``max_age`` is re-initialised (fresh params from
      ``split(split(key)[0], pool_size)[i]``, fresh Adam state, age 0); the others take
      one Adam step on ``eval.label_loss(logits, Y_s, 'mse')`` over the whole synthetic
      set, batch norm in training mode, age + 1;
    * the member the next loss uses is drawn uniformly with ``split(key)[1]`` (the first
      by ``init_state``), so the loss and ``update_state`` agree on it without a key in
      the state. It is stored as ``obj_state['member']``.

  Reads ``config.objective.{pool_size (10), max_age (100), lr_net (3e-4), reg (1e-6),
  pool_update ('all'), label_margin_weight (1.0), syn_labels ('frepo')}`` and
  ``config.model`` (FRePo: a ConvNet with batch norm, 'convnet_bn').

  Not here: FRePo's LAMB prototype optimiser with cosine decay is the loop's images
  optimizer; its evaluation (BN → identity, Adam + warmup-cosine, MSE) is the protocol's.

  Raises:
    ConfigError: a field out of range, naming ``objective.<field>``.
  """
  obj_cfg = config.objective
  pool_size = _positive(obj_cfg, 'pool_size', 10, integer=True)
  max_age = _positive(obj_cfg, 'max_age', 100, integer=True)
  lr_net = _positive(obj_cfg, 'lr_net', 3e-4)
  reg = _positive(obj_cfg, 'reg', 1e-6)
  margin_weight = _positive(obj_cfg, 'label_margin_weight', 1.0, allow_zero=True)
  pool_update = _choice(obj_cfg, 'pool_update', 'all', POOL_UPDATES)
  label_mode = _choice(obj_cfg, 'syn_labels', 'frepo', SYN_LABELS)
  tx = optax.adam(lr_net)

  def prepare(ds, config):
    model, image_shape = _model(config, ds)
    return {'model': model, 'image_shape': image_shape}

  def fresh_member(key, ctx):
    variables = models_lib.init_model(ctx['model'], key, ctx['image_shape'])
    return variables, tx.init(variables['params'])

  def init_state(key, ctx):
    init_key, member_key = jax.random.split(key)
    variables, opt_state = jax.vmap(lambda k: fresh_member(k, ctx))(
        jax.random.split(init_key, pool_size))
    age = (jnp.arange(pool_size) * max_age // pool_size).astype(jnp.int32)
    member = jax.random.randint(member_key, (), 0, pool_size, dtype=jnp.int32)
    return {'variables': variables, 'opt_state': opt_state, 'age': age, 'member': member}

  def features(model, variables, x):
    (_, feats), _ = models_lib.apply_model(model, variables, x, train=False, features=True)
    return feats['embedding']

  def loss(syn, real, key, ctx, step, obj_state):
    del key, step
    model = ctx['model']
    m = obj_state['member']
    variables = jax.tree_util.tree_map(lambda v: v[m], obj_state['variables'])
    num_classes = syn.labels.shape[-1]
    x_t = real.images.reshape((-1,) + real.images.shape[2:])
    y_t = centred_one_hot(real.labels.reshape(-1), num_classes)
    y_s = syn_label_targets(syn.labels, label_mode)
    f_t = features(model, variables, x_t)
    f_s = features(model, variables, syn.images)
    krr, acc = krr_loss(f_t @ f_s.T, f_s @ f_s.T, y_s, y_t, reg)
    margin = label_margin(y_s)
    value = krr - margin_weight * margin
    return value, {'krr': krr, 'krr_acc': acc, 'label_margin': margin}

  def member_update(variables, opt_state, age, key, images, targets, ctx):
    """Reset at max_age, else one Adam step on the synthetic set (see make_frepo)."""
    model = ctx['model']

    def reset(_):
      fresh, fresh_opt = fresh_member(key, ctx)
      return fresh, fresh_opt, jnp.zeros_like(age)

    def train(_):
      def mse(params):
        logits, new_vars = models_lib.apply_model(
            model, {**variables, 'params': params}, images, train=True)
        return eval_lib.label_loss(logits, targets, 'mse'), new_vars

      grads, new_vars = jax.grad(mse, has_aux=True)(variables['params'])
      updates, new_opt = tx.update(grads, opt_state, variables['params'])
      params = optax.apply_updates(variables['params'], updates)
      new_vars = {**new_vars, 'params': params}
      # Keep the carried dtypes (float64 synthetic images would promote BN statistics).
      new_vars = jax.tree_util.tree_map(lambda n, o: n.astype(o.dtype), new_vars, variables)
      return new_vars, new_opt, age + 1

    return jax.lax.cond(age >= max_age, reset, train, None)

  def update_state(obj_state, syn, real, key, ctx, step):
    del real, step
    reset_key, next_key = jax.random.split(key)
    member_keys = jax.random.split(reset_key, pool_size)
    targets = syn_label_targets(syn.labels, label_mode)
    pool = (obj_state['variables'], obj_state['opt_state'], obj_state['age'])
    if pool_update == 'all':
      variables, opt_state, age = jax.vmap(
          lambda v, o, a, k: member_update(v, o, a, k, syn.images, targets, ctx))(
              *pool, member_keys)
    else:
      m = obj_state['member']
      one = jax.tree_util.tree_map(lambda x: x[m], pool)
      new = member_update(*one, member_keys[m], syn.images, targets, ctx)
      variables, opt_state, age = jax.tree_util.tree_map(
          lambda x, n: x.at[m].set(n), pool, new)
    member = jax.random.randint(next_key, (), 0, pool_size, dtype=jnp.int32)
    return {'variables': variables, 'opt_state': opt_state, 'age': age, 'member': member}

  return Objective(prepare, loss, init_state=init_state, update_state=update_state)
