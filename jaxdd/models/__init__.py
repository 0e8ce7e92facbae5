"""Models of the dataset-distillation literature, as Flax Linen modules.

Every module is called as `module.apply(variables, x, train=False, features=False)`
with x [N, H, W, C] float32, and returns logits [N, num_classes] or, with
`features=True`, `(logits, {'embedding': [N, D], 'layers': (per-block
activations, shallow to deep)})`. Architectures and initialisation follow DCrepo
(VICO-UoE/DatasetCondensation `networks.py`, PyTorch defaults); see each module.

Use `get_model` to build one by name, `init_model` / `apply_model` to run it (the
latter handles batch-norm state), and `flatten_params` for a flat parameter vector
in depth order.
"""

import operator

from flax import linen as nn

from jaxdd.errors import ConfigError
from jaxdd.models import classic
from jaxdd.models import convnet as convnet_lib
from jaxdd.models import layers
from jaxdd.models import resnet
from jaxdd.models.classic import AlexNet
from jaxdd.models.classic import LeNet
from jaxdd.models.classic import MLP
from jaxdd.models.classic import VGG11
from jaxdd.models.convnet import ConvNet
from jaxdd.models.resnet import ResNet18
from jaxdd.models.utils import apply_model
from jaxdd.models.utils import depth_mask
from jaxdd.models.utils import flatten_params
from jaxdd.models.utils import has_batch_norm
from jaxdd.models.utils import init_model
from jaxdd.models.utils import param_spec

# name -> overrides of the ConvNet options (None: not a ConvNet).
_CONVNETS = {
    'convnet': {},
    'convnet_bn': {'norm': 'batchnorm'},
    'convnetd1': {'depth': 1},
    'convnetd2': {'depth': 2},
    'convnetd4': {'depth': 4},
    'convnetw32': {'width': 32},
    'convnetw64': {'width': 64},
}
# name -> (default norm, whether the caller may choose another norm).
_OTHERS = {
    'mlp': ('none', False),
    'lenet': ('none', False),
    'alexnet': ('none', False),
    'alexnet_bn': ('batchnorm', False),
    'vgg11': ('instancenorm', True),
    'vgg11_bn': ('batchnorm', False),
    'resnet18': ('instancenorm', True),
    'resnet18_bn': ('batchnorm', False),
}
MODEL_NAMES: tuple[str, ...] = tuple(_CONVNETS) + tuple(_OTHERS)


def _as_int(value) -> int | None:
  # Accept numpy integers (e.g. from array shapes or configs), not bools or floats.
  if isinstance(value, bool):
    return None
  try:
    return operator.index(value)
  except TypeError:
    return None


def _positive_int(field: str, value) -> int:
  n = _as_int(value)
  if n is None or n < 1:
    raise ConfigError(f'{field}={value!r} is not supported; accepted: an int >= 1')
  return n


def _check_image_shape(image_shape) -> tuple[int, int, int]:
  try:
    dims = () if isinstance(image_shape, str) else tuple(image_shape)
  except TypeError:
    dims = ()
  shape = tuple(_as_int(s) for s in dims)
  if len(shape) != 3 or any(s is None or s < 1 for s in shape):
    raise ConfigError(f'image_shape={image_shape!r} is not supported; accepted: '
                      '(H, W, C) with positive ints')
  return shape


def get_model(name: str, num_classes: int, *, image_shape: tuple[int, int, int],
              width: int = 128, depth: int = 3, norm: str | None = None,
              act: str = 'relu', pooling: str = 'avgpooling',
              conv_impl: str = 'auto') -> nn.Module:
  """Builds a model by name, validating the options before any compilation.

  Names: 'convnet' (options from the kwargs, default norm 'instancenorm'),
  'convnet_bn' (norm 'batchnorm'), 'convnetd1/d2/d4' (depth 1/2/4) and
  'convnetw32/w64' (width 32/64) -- a variant's depth or width replaces the
  kwarg --, and the fixed architectures 'mlp', 'lenet', 'alexnet', 'alexnet_bn',
  'vgg11' (instancenorm), 'vgg11_bn', 'resnet18' (instancenorm, CIFAR stem),
  'resnet18_bn'. Names are case-insensitive.

  `width`, `depth`, `act` and `pooling` shape the ConvNets only; the fixed
  architectures ignore them (their values are still validated). `norm=None` means
  the model's default; 'vgg11' and 'resnet18' accept any norm, the other fixed
  architectures raise if asked for a norm they do not have.

  Args:
    name: one of MODEL_NAMES.
    num_classes: number of logits.
    image_shape: (H, W, C) of the inputs. Decides the first conv's padding of
      1-channel inputs and whether the poolings fit: 'lenet', 'vgg11', 'vgg11_bn',
      'convnetd4' (or any ConvNet with depth >= 4 and pooling) and 'resnet18'
      with instancenorm (its last stage would be 1x1) reject 8x8.
    width: ConvNet channels.
    depth: ConvNet blocks.
    norm: 'instancenorm', 'batchnorm', 'layernorm', 'groupnorm', 'none' or None.
    act: 'relu', 'sigmoid' or 'leakyrelu'.
    pooling: 'avgpooling', 'maxpooling' or 'none'.
    conv_impl: convolution algorithm of every conv (see `layers.conv2d`).

  Returns:
    An unbound flax.linen.Module; see `init_model` / `apply_model`.

  Raises:
    ConfigError: naming `model`, `norm`, `pooling`, `act`, `conv_impl`, `width`,
      `depth`, `num_classes` or `image_shape` with the accepted values.
  """
  key = str(name).lower()
  layers.check_choice('model', key, MODEL_NAMES)
  num_classes = _positive_int('num_classes', num_classes)
  image_shape = _check_image_shape(image_shape)
  width = _positive_int('width', width)
  depth = _positive_int('depth', depth)
  if norm is not None:
    layers.check_choice('norm', norm, layers.NORMS)
  layers.check_choice('act', act, layers.ACTS)
  layers.check_choice('pooling', pooling, layers.POOLINGS)
  layers.check_choice('conv_impl', conv_impl, layers.CONV_IMPLS)

  if key in _CONVNETS:
    fixed = _CONVNETS[key]
    if norm is not None and 'norm' in fixed and norm != fixed['norm']:
      raise ConfigError(
          f"norm={norm!r} is not supported by model {key!r}; accepted: "
          f"{fixed['norm']!r} or None")
    opts = {'width': width, 'depth': depth,
            'norm': 'instancenorm' if norm is None else norm, **fixed}
    if opts['norm'] == 'groupnorm' and opts['width'] % layers.GROUPNORM_GROUPS:
      raise ConfigError(
          f"width={opts['width']} is not supported with norm='groupnorm'; "
          f'accepted: a multiple of {layers.GROUPNORM_GROUPS}')
    convnet_lib.convnet_feature_shape(image_shape, opts['depth'], opts['width'],
                                      pooling, opts['norm'])
    return ConvNet(num_classes, act=act, pooling=pooling, conv_impl=conv_impl,
                   **opts)

  default_norm, free = _OTHERS[key]
  if norm is not None and norm != default_norm and not free:
    raise ConfigError(f'norm={norm!r} is not supported by model {key!r}; '
                      f'accepted: {default_norm!r} or None')
  norm = default_norm if norm is None else norm
  if key == 'mlp':
    return MLP(num_classes)
  if key == 'lenet':
    classic.lenet_feature_hw(image_shape)
    return LeNet(num_classes, conv_impl=conv_impl)
  if key.startswith('alexnet'):
    classic.alexnet_feature_hw(image_shape)
    return AlexNet(num_classes, norm=norm, conv_impl=conv_impl)
  if key.startswith('vgg11'):
    classic.vgg_feature_hw(image_shape)
    return VGG11(num_classes, norm=norm, conv_impl=conv_impl)
  resnet.resnet_feature_hw(image_shape, norm)
  return ResNet18(num_classes, norm=norm, conv_impl=conv_impl)


def from_config(model_config, num_classes: int, image_shape) -> nn.Module:
  """``get_model`` from a config's ``model`` block: its ``name`` and the other fields as options.

  The one place a distiller turns ``config.model`` (e.g. ``{'name': 'convnet',
  'depth': 2}``) into a module, so every objective builds the same network.
  """
  options = {k: v for k, v in model_config.items() if k != 'name'}
  return get_model(model_config['name'], num_classes, image_shape=tuple(image_shape),
                   **options)


__all__ = [
    'MODEL_NAMES', 'get_model', 'from_config', 'init_model', 'apply_model', 'has_batch_norm',
    'depth_mask', 'flatten_params', 'param_spec', 'ConvNet', 'MLP', 'LeNet', 'AlexNet', 'VGG11',
    'ResNet18', 'ConfigError',
]
