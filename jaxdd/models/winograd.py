"""Winograd F(2x2, 3x3) convolution: 3x3 stride-1 convs with 2.25x fewer multiplies.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), eq. 8:
each 2x2 output tile is Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A for the 4x4 input tile d and
the 3x3 kernel g. Summed over input channels, the elementwise product becomes 16
independent matmuls [tiles, Cin] @ [Cin, Cout], one per position of the 4x4 transformed
tile: 16 multiplies per 4 outputs instead of 36, and the input is expanded 4x (16
values per 2x2 outputs) where the im2col matmul expands it 9x.

Why it is here: the distillation inner loops (DC/DSA's network updates, MTT's unrolled
student, the experts) are dominated by 3x3 convolutions whose gradients run on the CPU
as matmuls (`layers.conv2d`, impl 'matmul'); the same arithmetic in this form needs
fewer FLOPs and less memory traffic, forward and backward (autodiff transposes the
same slices, adds and matmuls). F(2x2, 3x3) is the variant whose float32 error stays at
the level of the direct convolution (the 4x4 and larger tiles lose digits).

The transforms are written as explicit adds on strided views, not as einsums with the
constant matrices, so XLA fuses them into elementwise loops.
"""

import jax
import jax.numpy as jnp


def _input_transform_1d(x: jax.Array, axis: int, tiles: int) -> list[jax.Array]:
  """Bᵀ d along `axis`: x has 2*tiles + 2 entries there; returns the 4 rows of the
  transformed tiles, each with `tiles` entries along `axis`.

  Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; the tile t covers
  entries 2t .. 2t+3, read as even/odd pairs of a [tiles + 1, 2] reshape.
  """
  shape = x.shape
  pairs = x.reshape(shape[:axis] + (tiles + 1, 2) + shape[axis + 1:])

  def take(start, parity):
    idx = [slice(None)] * pairs.ndim
    idx[axis] = slice(start, start + tiles)
    idx[axis + 1] = parity
    return pairs[tuple(idx)]

  d0, d1, d2, d3 = take(0, 0), take(0, 1), take(1, 0), take(1, 1)
  return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


def _output_transform_1d(m: list[jax.Array]) -> list[jax.Array]:
  """Aᵀ m for Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]: 4 transformed rows -> 2 outputs."""
  return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def kernel_transform(kernel: jax.Array) -> jax.Array:
  """G g Gᵀ per (Cin, Cout): [3, 3, Cin, Cout] -> [16, Cin, Cout] (row-major 4x4).

  G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
  """
  g = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]],
                kernel.dtype)
  u = jnp.einsum('ai,ijco,bj->abco', g, kernel, g)
  return u.reshape(16, *kernel.shape[2:])


def conv3x3_winograd(x: jax.Array, kernel: jax.Array,
                     pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """3x3, stride-1 cross-correlation (PyTorch's Conv2d), NHWC x HWIO -> NHWC.

  Args:
    x: [N, H, W, Cin].
    kernel: [3, 3, Cin, Cout].
    pads: ((top, bottom), (left, right)) zero padding, as `lax.conv_general_dilated`.

  Returns:
    [N, H + top + bottom - 2, W + left + right - 2, Cout].
  """
  if kernel.shape[:2] != (3, 3):
    raise ValueError(f'Winograd F(2x2, 3x3) needs a 3x3 kernel, got {kernel.shape[:2]}')
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  ho = h + pads[0][0] + pads[0][1] - 2
  wo = w + pads[1][0] + pads[1][1] - 2
  th, tw = -(-ho // 2), -(-wo // 2)
  # Pad to whole tiles: 2*tiles + 2 inputs per axis (odd outputs get one extra row/
  # column, cropped at the end).
  x = jnp.pad(x, ((0, 0), (pads[0][0], 2 * th + 2 - h - pads[0][0]),
                  (pads[1][0], 2 * tw + 2 - w - pads[1][0]), (0, 0)))
  rows = _input_transform_1d(x, 1, th)                       # 4 x [N, th, W', Cin]
  v = [c for r in rows for c in _input_transform_1d(r, 2, tw)]  # 16 x [N, th, tw, Cin]
  v = jnp.stack(v).reshape(16, n * th * tw, cin)
  m = jnp.matmul(v, kernel_transform(kernel))                # [16, N*th*tw, Cout]
  m = m.reshape(4, 4, n, th, tw, cout)
  cols = _output_transform_1d([m[:, b] for b in range(4)])   # 2 x [4, N, th, tw, Cout]
  y = [_output_transform_1d([c[a] for a in range(4)]) for c in cols]  # y[q][p]
  # y[q][p] is the output at tile offset (p, q): interleave into [N, 2th, 2tw, Cout].
  y = jnp.stack([jnp.stack(y[0], 0), jnp.stack(y[1], 0)], 0)  # [q, p, N, th, tw, C]
  y = y.transpose(2, 3, 1, 4, 0, 5).reshape(n, 2 * th, 2 * tw, cout)
  return y[:, :ho, :wo]
