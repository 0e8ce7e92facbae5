"""Building blocks shared by every jaxdd model: PyTorch-initialised Conv and Dense,
the normalisation layers of the dataset-distillation literature, and a conv block.

Why our own layers instead of `flax.linen.Conv` / `nn.BatchNorm` / `nn.GroupNorm`:

* Initialisation. The published results (DM's random-network embeddings, DC's
  fresh networks, every evaluation table) were produced by PyTorch networks with
  PyTorch's default init: kernels and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  (`kaiming_uniform(a=sqrt(5))`). Flax defaults (lecun-normal kernels, zero biases)
  change those numbers.
* Batch norm. PyTorch's running variance uses the *unbiased* batch variance and a
  momentum of 0.1 on the new value; flax's `BatchNorm` uses the biased variance.
  Matching PyTorch is cheap (one scalar factor), so `Norm('batchnorm')` does.
* One place for the convolution algorithm (`conv2d`), so an alternative
  implementation (e.g. Winograd) can be swapped in for every model by `impl`.

All tensors are NHWC; conv kernels are HWIO ([kh, kw, Cin, Cout]).
"""

from collections.abc import Sequence
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdd import sharding
from jaxdd.errors import ConfigError
from jaxdd.models import winograd

# Accepted values of the public model options (validated by `get_model` and here).
CONV_IMPLS = ('auto', 'xla', 'matmul', 'winograd')
NORMS = ('instancenorm', 'batchnorm', 'layernorm', 'groupnorm', 'none')
ACTS = ('relu', 'sigmoid', 'leakyrelu')
POOLINGS = ('avgpooling', 'maxpooling', 'none')

# PyTorch defaults: BatchNorm2d/GroupNorm/LayerNorm eps, and BatchNorm2d momentum
# (weight of the *new* batch statistic in the running average).
NORM_EPS = 1e-5
BN_MOMENTUM = 0.1
GROUPNORM_GROUPS = 4

Padding = int | str | Sequence[tuple[int, int]]


def check_choice(field: str, value: Any, accepted: Sequence[str]) -> None:
  """Raises ConfigError naming `field` unless `value` is one of `accepted`."""
  if value not in accepted:
    raise ConfigError(
        f'{field}={value!r} is not supported; accepted: {", ".join(accepted)}')


def torch_uniform(fan_in: int) -> Callable[..., jax.Array]:
  """Initializer U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for the
  weights (kaiming_uniform with a=sqrt(5)) and biases of Conv2d and Linear.

  Args:
    fan_in: inputs feeding one output unit (Cin*kh*kw for a conv, Cin for Dense).

  Returns:
    A flax initializer `init(key, shape, dtype) -> array`.
  """
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _padding_pairs(padding: Padding) -> str | list[tuple[int, int]]:
  """Normalises an int / 'SAME' / 'VALID' / [(lo, hi), (lo, hi)] padding."""
  if isinstance(padding, str):
    if padding.upper() not in ('SAME', 'VALID'):
      raise ConfigError(
          f"padding={padding!r} is not supported; accepted: int, 'SAME', 'VALID'")
    return padding.upper()
  if isinstance(padding, int):
    return [(padding, padding), (padding, padding)]
  return [tuple(p) for p in padding]


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
           padding: Padding, impl: str = 'auto') -> jax.Array:
  """2-D cross-correlation (PyTorch's Conv2d without bias), NHWC x HWIO -> NHWC.

  The single place where the convolution algorithm is chosen, so alternative
  implementations are added here and reach every model through `Conv.impl`.

  Why 'matmul' exists: on XLA:CPU (jaxlib 0.10) a convolution's gradient inside a
  `lax.scan`/`while` body runs on a slow generic path, ~100x slower than the same
  gradient outside a loop (measured: 17 s vs 0.17 s for a 3x3, 128->128 conv on
  100x16x16 images). Every training loop of jaxdd is a scan, so on the CPU the conv is
  written as patches @ kernel: its forward and both gradients are plain matmuls, fast
  inside loops and under `vmap` over networks (a batched matmul, where a vmapped
  `lax.conv` becomes a grouped convolution). GPUs and TPUs keep XLA's convolution.

  Why 'winograd': the 3x3 stride-1 convs of every ConvNet/VGG/ResNet, computed as
  Winograd F(2x2, 3x3) (models/winograd.py), need 2.25x fewer multiplies than the
  patches matmul and expand the input 4x instead of 9x. Measured on 2 CPU cores (AMD
  EPYC, jaxlib 0.10), value and both gradients of a 128->128 conv on 100x14x14 images
  in a jitted function: 87 ms vs 160 ms; a whole ConvNet-3 training step on 100 MNIST
  images inside a scan: 215 ms vs 273 ms. Convs it does not apply to (strided, not
  3x3, or fewer than WINOGRAD_MIN_CIN input channels) use the patches matmul.

  Args:
    x: [N, H, W, Cin] input.
    kernel: [kh, kw, Cin, Cout] kernel.
    strides: (sh, sw).
    padding: int (symmetric, as PyTorch's `padding=`), 'SAME', 'VALID' or
      [(top, bottom), (left, right)].
    impl: 'xla' (`lax.conv_general_dilated`), 'matmul' (patches @ kernel),
      'winograd' (F(2x2, 3x3) where it applies, else 'matmul') or 'auto' ('winograd'
      on the CPU, 'xla' on accelerators and in a distillation step split by rows over
      several CPU devices, ``sharding.rows_step``: the Winograd form merges the batch
      with the tiles into one axis, which XLA's partitioner does not split — an MTT
      step then ran 0.99x the 1-device FLOPs per device on 8 simulated devices, vs
      0.15x with 'xla'. Members split over devices keep it: there the XLA form is the
      one not split, its vmapped convolution folding the members into feature groups).

  Returns:
    [N, H', W', Cout] output.
  """
  check_choice('conv_impl', impl, CONV_IMPLS)
  if impl == 'auto':
    on_cpu = jax.default_backend() == 'cpu'
    impl = 'winograd' if on_cpu and not sharding.rows_step() else 'xla'
  pads = _padding_pairs(padding)
  if impl == 'xla':
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=tuple(strides), padding=pads,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  if impl == 'winograd' and _winograd_applies(kernel, strides):
    if isinstance(pads, str):
      pads = jax.lax.padtype_to_pads(x.shape[1:3], (3, 3), (1, 1), pads)
    return winograd.conv3x3_winograd(x, kernel, tuple(tuple(p) for p in pads))
  return _conv2d_matmul(x, kernel, tuple(strides), pads)


# Below this many input channels the Winograd transforms cost more than the matmul
# saves (measured on the CPU: 6x slower for the 1-channel first conv of MNIST).
WINOGRAD_MIN_CIN = 16


def _winograd_applies(kernel: jax.Array, strides) -> bool:
  """Whether `conv2d(impl='winograd')` uses F(2x2, 3x3) (else the matmul form)."""
  return (kernel.shape[:2] == (3, 3) and tuple(strides) == (1, 1)
          and kernel.shape[2] >= WINOGRAD_MIN_CIN)


def _conv2d_matmul(x, kernel, strides, pads):
  """Convolution as one matmul of the [N*H'*W', kh*kw*Cin] patches with the kernel."""
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  if isinstance(pads, str):
    pads = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), strides, pads)
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  n, h, w, _ = x.shape
  ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
  if kh == kw == 1:
    patches = x[:, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw, :]
  else:
    # Patch channels ordered (i, j, c): the row-major order of the HWIO kernel.
    patches = jnp.concatenate(
        [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
         for i in range(kh) for j in range(kw)], axis=-1)
  out = patches.reshape(n * ho * wo, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)
  return out.reshape(n, ho, wo, cout)


class Conv(nn.Module):
  """2-D convolution with PyTorch's default init.

  Params: 'kernel' [kh, kw, Cin, Cout] (HWIO) and 'bias' [Cout], both
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = kh*kw*Cin.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    strides: (sh, sw).
    padding: int (PyTorch's symmetric padding), 'SAME' or 'VALID'.
    use_bias: whether to add a bias.
    impl: convolution algorithm, see `conv2d`.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Padding = 1
  use_bias: bool = True
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [N, H, W, Cin] -> [N, H', W', features]."""
    kh, kw = self.kernel_size
    fan_in = kh * kw * x.shape[-1]
    kernel = self.param('kernel', torch_uniform(fan_in),
                        (kh, kw, x.shape[-1], self.features))
    y = conv2d(x, kernel, self.strides, self.padding, self.impl)
    if self.use_bias:
      y = y + self.param('bias', torch_uniform(fan_in), (self.features,))
    return y


class Dense(nn.Module):
  """Fully connected layer with PyTorch's default init (as `torch.nn.Linear`).

  Params: 'kernel' [Din, features] and 'bias' [features], U(+-1/sqrt(Din)).
  """
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., Din] -> [..., features]."""
    fan_in = x.shape[-1]
    y = x @ self.param('kernel', torch_uniform(fan_in), (fan_in, self.features))
    if self.use_bias:
      y = y + self.param('bias', torch_uniform(fan_in), (self.features,))
    return y


def _standardize(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  # Two-pass variance (mean of squared deviations), like PyTorch, rather than
  # E[x^2] - E[x]^2, which cancels badly for large-mean activations.
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + NORM_EPS)


class Norm(nn.Module):
  """The normalisations of DCrepo's ConvNet, with PyTorch semantics (eps 1e-5).

  kind:
    'instancenorm': GroupNorm with groups = channels (DCrepo's "instancenorm"):
      per sample and channel over H, W; affine scale/bias [C].
    'groupnorm': GroupNorm with 4 groups; affine [C].
    'layernorm': per sample over H, W, C, elementwise affine [H, W, C]
      (torch `LayerNorm([C, H, W])`).
    'batchnorm': per channel over N, H, W with batch statistics when `train`,
      running averages otherwise; affine [C]. Running stats live in the
      'batch_stats' collection as 'mean' and 'var' (init 0 and 1) and are
      updated as PyTorch does: new = 0.9 * old + 0.1 * batch_stat, where the
      variance fed to the running average is the *unbiased* one (n / (n - 1) times
      the biased variance used to normalise). The stats are not updated during
      `init`.

  Params are 'scale' (init 1) and 'bias' (init 0).
  """
  kind: str

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [N, H, W, C] -> same shape."""
    check_choice('norm', self.kind, NORMS)
    if self.kind == 'none':
      return x
    c = x.shape[-1]
    affine_shape = (c,)
    if self.kind in ('instancenorm', 'groupnorm'):
      groups = c if self.kind == 'instancenorm' else GROUPNORM_GROUPS
      if c % groups:
        raise ConfigError(
            f"norm='groupnorm' needs channels divisible by {groups}, got {c}")
      if groups == c:
        # Per channel over (H, W), without the [.., groups, 1] reshape of the general
        # case: XLA:CPU lays a trailing size-1 axis out badly, and that reshape made
        # the norm of a 32x32x128 map 3x slower (143 vs 47 ms, forward + backward).
        y = _standardize(x, (1, 2))
      else:
        n, h, w = x.shape[:3]
        y = _standardize(x.reshape(n, h, w, groups, c // groups), (1, 2, 4))
        y = y.reshape(x.shape)
    elif self.kind == 'layernorm':
      affine_shape = x.shape[1:]
      y = _standardize(x, (1, 2, 3))
    else:  # batchnorm
      y = self._batch_norm(x, train)
    scale = self.param('scale', nn.initializers.ones, affine_shape)
    bias = self.param('bias', nn.initializers.zeros, affine_shape)
    return y * scale + bias

  def _batch_norm(self, x: jax.Array, train: bool) -> jax.Array:
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (c,), jnp.float32)
    if not train:
      return (x - ra_mean.value) * jax.lax.rsqrt(ra_var.value + NORM_EPS)
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))  # biased: normalises
    if not self.is_initializing():
      n = x.shape[0] * x.shape[1] * x.shape[2]
      # PyTorch raises for n == 1; we keep the biased value instead of dividing by 0.
      unbiased = var * (n / max(n - 1, 1))
      ra_mean.value = (1 - BN_MOMENTUM) * ra_mean.value + BN_MOMENTUM * mean
      ra_var.value = (1 - BN_MOMENTUM) * ra_var.value + BN_MOMENTUM * unbiased
    return (x - mean) * jax.lax.rsqrt(var + NORM_EPS)


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """'relu', 'sigmoid' or 'leakyrelu' (negative slope 0.01, PyTorch's default)."""
  check_choice('act', name, ACTS)
  return {'relu': nn.relu, 'sigmoid': nn.sigmoid,
          'leakyrelu': lambda x: nn.leaky_relu(x, 0.01)}[name]


def pool2x2(x: jax.Array, pooling: str) -> jax.Array:
  """2x2 stride-2 pooling without padding (PyTorch floor mode): H -> H // 2."""
  check_choice('pooling', pooling, POOLINGS)
  if pooling == 'avgpooling':
    return nn.avg_pool(x, (2, 2), strides=(2, 2), padding='VALID')
  if pooling == 'maxpooling':
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
  return x


class ConvBlock(nn.Module):
  """conv -> norm -> activation -> 2x2 pooling, each optional but the conv.

  Submodules are named 'conv' and 'norm' so `flatten_params` (which sorts names)
  orders them as they are applied.

  Attributes:
    features: output channels.
    kernel_size, strides, padding, use_bias: of the conv (see `Conv`).
    norm: one of NORMS ('none' creates no norm parameters).
    act: one of ACTS, or None for no activation (e.g. before a residual add).
    pooling: one of POOLINGS.
    conv_impl: see `conv2d`.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Padding = 1
  use_bias: bool = True
  norm: str = 'none'
  act: str | None = 'relu'
  pooling: str = 'none'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [N, H, W, Cin] -> [N, H', W', features]."""
    x = Conv(self.features, self.kernel_size, self.strides, self.padding,
             self.use_bias, self.conv_impl, name='conv')(x)
    if self.norm != 'none':
      x = Norm(self.norm, name='norm')(x, train)
    if self.act is not None:
      x = activation(self.act)(x)
    return pool2x2(x, self.pooling)


def flatten_features(x: jax.Array) -> jax.Array:
  """[N, ...] -> [N, D]. Row-major NHWC order (PyTorch flattens NCHW: the same
  numbers in a different order, which only permutes the classifier's rows)."""
  return x.reshape(x.shape[0], -1)
