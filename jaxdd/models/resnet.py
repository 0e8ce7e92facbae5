"""ResNet-18 with the CIFAR stem, as DCrepo's `ResNet18` / `ResNet18BN`.

Stem: conv3x3(64), stride 1, no bias -> norm -> relu (no maxpool). Then four stages
of two BasicBlocks (64, 128, 256, 512 channels; stride 2 at the first block of
stages 2-4), global average pooling and one linear layer. Convs have no bias, as in
DCrepo; the projection shortcut (1x1 conv with stride -> norm) is used where the
shape changes.

Pooling before the classifier: DCrepo applies `avg_pool2d(out, 4)` and flattens.
On 32x32 and 28x28 inputs the last map is 4x4, so that *is* global average pooling
and the two agree exactly; on other sizes DCrepo's fixed Linear(512) would fail
(e.g. 2x2 pooled maps from 64x64 give 2048 features). We always use global average
pooling, so any input size works mechanically. (DCrepo's other variant,
ResNet18_AP, flattens a 4x4 map after an identity AvgPool(1); it is not what
'resnet18' denotes.)

Small inputs: 8x8 digits reach stage 4 as a 1x1 map (8 -> 4 -> 2 -> 1). Instance
norm of a single pixel is x - mean = 0, so with 'instancenorm' the last stage
outputs a constant and the logits do not depend on the input: `resnet_feature_hw`
rejects that case ('resnet18_bn' works on 8x8).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdd.errors import ConfigError
from jaxdd.models import layers

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, first stride)
BLOCKS_PER_STAGE = 2  # ResNet-18


def resnet_feature_hw(image_shape, norm: str = 'instancenorm') -> tuple[int, int]:
  """Spatial size of the last stage's map (4x4 on 32x32 and 28x28).

  Raises:
    ConfigError: with norm 'instancenorm' when that map has a single pixel.
  """
  hw = []
  for s in image_shape[:2]:
    for _, stride in STAGES:
      s = (s - 1) // stride + 1  # 3x3 conv, padding 1
    hw.append(s)
  if norm == 'instancenorm' and hw[0] * hw[1] < 2:
    raise ConfigError(
        f"image_shape={tuple(image_shape)} is too small for model 'resnet18' with "
        "norm='instancenorm': its last stage is 1x1, where instance norm outputs a "
        "constant; use 'resnet18_bn' or inputs of at least 9x9")
  return hw[0], hw[1]


class BasicBlock(nn.Module):
  """relu(norm(conv3x3(relu(norm(conv3x3_s(x))))) + shortcut(x)).

  Submodules: 'residual_1', 'residual_2' (conv + norm each) and, when the stride or
  the channel count changes, 'shortcut' (1x1 conv with stride + norm).
  """
  features: int
  strides: int = 1
  norm: str = 'instancenorm'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [N, H, W, Cin] -> [N, ceil(H / strides), ceil(W / strides), features]."""
    s = (self.strides, self.strides)
    y = layers.ConvBlock(self.features, strides=s, use_bias=False, norm=self.norm,
                         conv_impl=self.conv_impl, name='residual_1')(x, train)
    y = layers.ConvBlock(self.features, use_bias=False, norm=self.norm, act=None,
                         conv_impl=self.conv_impl, name='residual_2')(y, train)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = layers.ConvBlock(self.features, (1, 1), strides=s, padding=0,
                           use_bias=False, norm=self.norm, act=None,
                           conv_impl=self.conv_impl, name='shortcut')(x, train)
    return nn.relu(y + x)


class ResNet18(nn.Module):
  """DCrepo's ResNet-18 (CIFAR stem) with global average pooling.

  Parameter names: 'stem', 'layer{1..4}_{0,1}' (BasicBlocks), 'classifier'.

  Attributes:
    num_classes: logits.
    norm: 'instancenorm' (DCrepo's default: GroupNorm with groups = channels),
      'batchnorm' (ResNet18BN) or any other of `layers.NORMS`.
    conv_impl: convolution algorithm (see `layers.conv2d`).
  """
  num_classes: int
  norm: str = 'instancenorm'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool = False):
    """Forward pass.

    Args:
      x: [N, H, W, C] float32 images (any H, W >= 1).
      train: batch norm uses batch statistics (and updates 'batch_stats').
      features: also return the embedding and per-stage activations.

    Returns:
      logits [N, num_classes]; with `features`, `(logits, {'embedding': [N, 512]
      (globally pooled), 'layers': (stem, layer1, layer2, layer3, layer4 outputs)})`.
    """
    x = layers.ConvBlock(64, use_bias=False, norm=self.norm,
                         conv_impl=self.conv_impl, name='stem')(x, train)
    outs = [x]
    for i, (ch, stride) in enumerate(STAGES):
      for j in range(BLOCKS_PER_STAGE):
        x = BasicBlock(ch, stride if j == 0 else 1, self.norm, self.conv_impl,
                       name=f'layer{i + 1}_{j}')(x, train)
      outs.append(x)
    emb = jnp.mean(x, axis=(1, 2))
    logits = layers.Dense(self.num_classes, name='classifier')(emb)
    if features:
      return logits, {'embedding': emb, 'layers': tuple(outs)}
    return logits
