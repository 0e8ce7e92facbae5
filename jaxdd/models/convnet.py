"""ConvNet: the standard network of dataset distillation (DCrepo `networks.py`).

depth x [conv3x3 (width channels) -> norm -> act -> 2x2 pool], then one linear
layer on the flattened feature map. ConvNet-3 (depth 3, width 128, instancenorm,
relu, avgpooling) is the default of DC, DSA, DM, MTT and their descendants.
"""

import flax.linen as nn
import jax

from jaxdd.errors import ConfigError
from jaxdd.models import layers


def first_conv_padding(image_shape: tuple[int, int, int]) -> int:
  """Padding of the first conv: 3 for 28x28x1 (MNIST-like), else 1.

  DCrepo pads MNIST by 3 so the feature map is 32x32, as for CIFAR, and ConvNet-3
  ends at 4x4 (embedding 2048) on both. (DCrepo's test is `channel == 1`; its only
  1-channel data sets are 28x28, so the two rules agree there. Other 1-channel
  sizes, e.g. 8x8 digits, keep padding 1 here.)
  """
  return 3 if tuple(image_shape) == (28, 28, 1) else 1


def convnet_feature_shape(image_shape: tuple[int, int, int], depth: int,
                          width: int, pooling: str,
                          norm: str = 'instancenorm') -> tuple[int, int, int]:
  """Shape [H', W', width] of the last block's output (= the embedding, unflattened).

  Raises:
    ConfigError: if pooling shrinks the map below 1x1 (e.g. depth 4 on 8x8), or
      if instance norm would normalise a single pixel (it then outputs a
      constant, so the logits would not depend on the input).
  """
  h, w, _ = image_shape
  grow = 2 * (first_conv_padding(image_shape) - 1)  # 3x3 conv, padding p: +2p-2
  h, w = h + grow, w + grow
  for d in range(depth):
    if norm == 'instancenorm' and h * w < 2:  # the map block d normalises
      raise ConfigError(
          f'image_shape={tuple(image_shape)} is too small for a ConvNet of depth '
          f"{depth} with norm='instancenorm': block {d} would normalise a 1x1 "
          'map to a constant; use a smaller depth or another norm')
    if pooling != 'none':
      h, w = h // 2, w // 2
    if h < 1 or w < 1:
      raise ConfigError(
          f'image_shape={tuple(image_shape)} is too small for a ConvNet of depth '
          f'{depth} with {pooling}: {d + 1} 2x2 poolings shrink it below 1x1; use '
          "a smaller depth or pooling='none'")
  return h, w, width


class ConvNet(nn.Module):
  """DCrepo's ConvNet.

  Parameter names: 'block_0' ... 'block_{depth-1}' (each 'conv' [+ 'norm']) and
  'classifier'.

  Attributes:
    num_classes: logits.
    width: channels of every conv.
    depth: number of conv blocks.
    norm: 'instancenorm', 'batchnorm', 'layernorm', 'groupnorm' or 'none'.
    act: 'relu', 'sigmoid' or 'leakyrelu'.
    pooling: 'avgpooling', 'maxpooling' or 'none'.
    conv_impl: convolution algorithm (see `layers.conv2d`).
  """
  num_classes: int
  width: int = 128
  depth: int = 3
  norm: str = 'instancenorm'
  act: str = 'relu'
  pooling: str = 'avgpooling'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """Forward pass.

    Args:
      x: [N, H, W, C] float32 images.
      train: batch norm uses batch statistics (and updates 'batch_stats').
      features: also return the embedding and per-block activations.

    Returns:
      logits [N, num_classes]; with `features`, `(logits, {'embedding': [N, D],
      'layers': (block_0 output, ..., block_{depth-1} output)})` where
      D = H'*W'*width (2048 for ConvNet-3 on 32x32 or 28x28) is DCrepo's embed().
    """
    outs = []
    for d in range(self.depth):
      pad = first_conv_padding(x.shape[1:]) if d == 0 else 1
      x = layers.ConvBlock(
          self.width, padding=pad, norm=self.norm, act=self.act,
          pooling=self.pooling, conv_impl=self.conv_impl, name=f'block_{d}')(
              x, train)
      outs.append(x)
    emb = layers.flatten_features(x)
    logits = layers.Dense(self.num_classes, name='classifier')(emb)
    if features:
      return logits, {'embedding': emb, 'layers': tuple(outs)}
    return logits
