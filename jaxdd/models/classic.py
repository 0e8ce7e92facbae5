"""MLP, LeNet, AlexNet and VGG11 as in DCrepo `networks.py` (NCHW -> NHWC).

DCrepo sizes the first linear layer for 28x28 or 32x32 inputs only; here the
linear layers infer their input size, so any input that survives the poolings
works. `*_feature_hw` give the spatial size that reaches the classifier and raise
a ConfigError for inputs the poolings would shrink below 1x1 (LeNet and VGG11 on
8x8 digits; AlexNet survives 8x8).

Parameter names are chosen so that `flatten_params`' natural sort is depth order:
'block_i' / 'fc_i' with 'conv' before 'norm', and 'classifier' last.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxdd.errors import ConfigError
from jaxdd.models import layers


def _check_hw(model: str, image_shape, hw: tuple[int, int], why: str):
  if min(hw) < 1:
    raise ConfigError(
        f'image_shape={tuple(image_shape)} is too small for model {model!r}: '
        f'{why} shrink it below 1x1')
  return hw


def _conv_out(size: int, kernel: int, pad: int) -> int:
  return size + 2 * pad - kernel + 1


def _features_out(x, outs, logits, features):
  if features:
    return logits, {'embedding': x, 'layers': tuple(outs)}
  return logits


class MLP(nn.Module):
  """Dense(128) -> relu -> Dense(128) -> relu -> Dense(classes) on the flat input.

  features=True: embedding = second hidden layer [N, 128]; layers = (fc_0, fc_1)
  activations.
  """
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """x: [N, H, W, C] -> logits [N, num_classes] (see module doc for features)."""
    del train  # no batch norm
    x = layers.flatten_features(x)
    outs = []
    for i in range(2):
      x = nn.relu(layers.Dense(128, name=f'fc_{i}')(x))
      outs.append(x)
    logits = layers.Dense(self.num_classes, name='classifier')(x)
    return _features_out(x, outs, logits, features)


def lenet_feature_hw(image_shape) -> tuple[int, int]:
  """Spatial size of LeNet's last pooled map (5x5 on 28x28x1 and 32x32x3)."""
  pad = 2 if image_shape[2] == 1 else 0
  hw = []
  for s in image_shape[:2]:
    s = _conv_out(s, 5, pad) // 2
    s = _conv_out(s, 5, 0) // 2 if s >= 5 else 0
    hw.append(s)
  return _check_hw('lenet', image_shape, tuple(hw), 'two 5x5 convs and 2x2 poolings')


class LeNet(nn.Module):
  """conv5x5(6) -> relu -> maxpool -> conv5x5(16) -> relu -> maxpool ->
  Dense(120) -> relu -> Dense(84) -> relu -> Dense(classes).

  The first conv pads by 2 for 1-channel inputs (28 -> 32, as DCrepo), else 0.
  Does not support 8x8 inputs (see `lenet_feature_hw`).
  features=True: embedding = the 84-d hidden layer (DCrepo's embed()); layers =
  (block_0, block_1, fc_0, fc_1) outputs.
  """
  num_classes: int
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """x: [N, H, W, C] -> logits [N, num_classes] (see class doc for features)."""
    del train  # no batch norm
    outs = []
    for i, (ch, pad) in enumerate([(6, 2 if x.shape[-1] == 1 else 0), (16, 0)]):
      x = layers.ConvBlock(ch, (5, 5), padding=pad, pooling='maxpooling',
                           conv_impl=self.conv_impl, name=f'block_{i}')(x)
      outs.append(x)
    x = layers.flatten_features(x)
    for i, ch in enumerate([120, 84]):
      x = nn.relu(layers.Dense(ch, name=f'fc_{i}')(x))
      outs.append(x)
    logits = layers.Dense(self.num_classes, name='classifier')(x)
    return _features_out(x, outs, logits, features)


def alexnet_feature_hw(image_shape) -> tuple[int, int]:
  """Spatial size of AlexNet's last pooled map (4x4 on 28x28x1 / 32x32x3; 1x1 on
  8x8)."""
  pad = 4 if image_shape[2] == 1 else 2
  hw = tuple(_conv_out(s, 5, pad) // 2 // 2 // 2 for s in image_shape[:2])
  return _check_hw('alexnet', image_shape, hw, 'three 2x2 poolings')


# (channels, kernel, padding, maxpool after) of DCrepo's CIFAR AlexNet; the first
# padding is 4 for 1-channel inputs (28 -> 32).
_ALEXNET = ((128, 5, 2, True), (192, 5, 2, True), (256, 3, 1, False),
            (192, 3, 1, False), (192, 3, 1, True))


class AlexNet(nn.Module):
  """DCrepo's CIFAR AlexNet: five convs (128, 192, 256, 192, 192; maxpool after the
  1st, 2nd and 5th), relu, one linear layer. norm='batchnorm' is DCrepo's AlexNetBN
  (BN between each conv and its relu).

  features=True: embedding = flattened last map (3072 on 32x32, DCrepo's embed());
  layers = the five block outputs.
  """
  num_classes: int
  norm: str = 'none'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """x: [N, H, W, C] -> logits [N, num_classes] (see class doc for features)."""
    outs = []
    for i, (ch, k, pad, pool) in enumerate(_ALEXNET):
      if i == 0 and x.shape[-1] == 1:
        pad = 4
      x = layers.ConvBlock(ch, (k, k), padding=pad, norm=self.norm,
                           pooling='maxpooling' if pool else 'none',
                           conv_impl=self.conv_impl, name=f'block_{i}')(x, train)
      outs.append(x)
    x = layers.flatten_features(x)
    logits = layers.Dense(self.num_classes, name='classifier')(x)
    return _features_out(x, outs, logits, features)


# DCrepo's cfg_vgg['VGG11']: channels, 'M' = 2x2 maxpool.
VGG11_CFG = (64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M')


def vgg_feature_hw(image_shape, cfg: Sequence = VGG11_CFG) -> tuple[int, int]:
  """Spatial size after VGG's five poolings (1x1 on 28x28x1 and 32x32x3)."""
  pad = 3 if image_shape[2] == 1 else 1
  pools = sum(1 for v in cfg if v == 'M')
  hw = tuple(_conv_out(s, 3, pad) >> pools for s in image_shape[:2])
  return _check_hw('vgg11', image_shape, hw, f'{pools} 2x2 poolings')


class VGG11(nn.Module):
  """DCrepo's VGG11: [conv3x3 -> norm -> relu] per cfg entry, 2x2 maxpool at 'M',
  then one linear layer (DCrepo's final AvgPool2d(1) is the identity).

  The first conv pads by 3 for 1-channel inputs (28 -> 32). norm defaults to
  DCrepo's 'instancenorm'; 'batchnorm' is VGG11BN. Does not support 8x8 inputs.
  features=True: embedding = flattened last map (512 on 32x32); layers = the 8
  conv block outputs (a block includes the maxpool that follows it).
  """
  num_classes: int
  norm: str = 'instancenorm'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """x: [N, H, W, C] -> logits [N, num_classes] (see class doc for features)."""
    outs = []
    convs = [v for v in VGG11_CFG if v != 'M']
    # A block pools when the next cfg entry is 'M'.
    pools = [VGG11_CFG[i + 1] == 'M' for i, v in enumerate(VGG11_CFG) if v != 'M']
    for i, (ch, pool) in enumerate(zip(convs, pools)):
      pad = 3 if i == 0 and x.shape[-1] == 1 else 1
      x = layers.ConvBlock(ch, padding=pad, norm=self.norm,
                           pooling='maxpooling' if pool else 'none',
                           conv_impl=self.conv_impl, name=f'block_{i}')(x, train)
      outs.append(x)
    x = layers.flatten_features(x)
    logits = layers.Dense(self.num_classes, name='classifier')(x)
    return _features_out(x, outs, logits, features)
