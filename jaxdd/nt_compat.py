"""neural-tangents on current jax: the one place that knows how to import it (docs/design.md).

KIP (Nguyen, Chen & Lee, ICLR 2021; Nguyen, Novak, Xiao & Lee, NeurIPS 2021) computes
the infinite-width NNGP and NTK of a ConvNet or fully connected network with
neural-tangents' ``stax``. Its last release, 0.6.5 (2023), fails to import on jax ≥ 0.6
because jax moved or removed nine names it imports at module level:

  * ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive}``: now in ``jax.extend.core``;
  * the ``jax.util`` module with ``safe_map`` and ``safe_zip``: now in ``jax._src.util``;
  * ``jax.interpreters.ad.zeros_like_p``: gone; neural-tangents only uses it as a key of
    its structured-derivative rule tables, so any ``Primitive`` serves.

``import_neural_tangents`` restores exactly these (only where jax lacks them, so a
future jax that brings them back is left alone) and replaces
``neural_tangents.experimental`` (TensorFlow ports of the empirical kernels, which
import TensorFlow at import time) by an empty module. What works then, and is tested in
``tests/test_nt_compat.py``: ``stax`` ``kernel_fn`` ('nngp', 'ntk') of Dense / Conv /
Relu / AvgPool / Flatten networks, and ``empirical_ntk_fn`` with its default
implementation. ``NtkImplementation.STRUCTURED_DERIVATIVES`` and ``AUTO`` do not work
(they walk jaxprs with the removed internals); do not use them.

float32 only: on jaxlib ≥ 0.8, ``jit`` of the conv ``kernel_fn`` with
``jax_enable_x64`` crashes the process (a jaxlib bug), so jaxdd runs KIP in float32 with
KIP's trace-scaled ridge instead of KIP's float64 (``objectives/krr.py``).
"""

import importlib
import sys
import types

import jax
import jax.extend.core as jex_core
from jax._src import util as jax_src_util
from jax.interpreters import ad

INSTALL_HINT = "pip install 'jaxdd[nt]'   (neural-tangents==0.6.5)"
ARCHS = ('conv', 'fc')


def _restore_jax_names() -> list[str]:
  """Puts back the names neural-tangents 0.6.5 imports; returns the ones it added."""

  added = []
  for name in ('Jaxpr', 'JaxprEqn', 'Literal', 'Var', 'Primitive'):
    if not hasattr(jax.core, name):
      setattr(jax.core, name, getattr(jex_core, name))
      added.append(f'jax.core.{name}')
  if 'jax.util' not in sys.modules:
    try:
      importlib.import_module('jax.util')
    except ImportError:
      util = types.ModuleType('jax.util')
      util.__doc__ = 'jaxdd.nt_compat: safe_map/safe_zip for neural-tangents 0.6.5.'
      sys.modules['jax.util'] = util
      jax.util = util
      added.append('jax.util')
  util = sys.modules['jax.util']
  for name in ('safe_map', 'safe_zip'):
    if not hasattr(util, name):
      setattr(util, name, getattr(jax_src_util, name))
      added.append(f'jax.util.{name}')
  if not hasattr(ad, 'zeros_like_p'):
    # Only a dict key in neural_tangents/_src/utils/rules.py; never bound or called.
    ad.zeros_like_p = jex_core.Primitive('zeros_like')
    added.append('jax.interpreters.ad.zeros_like_p')
  return added


def import_neural_tangents():
  """Imports neural-tangents 0.6.5 on current jax and returns the module.

  Restores the names listed in the module doc, stubs ``neural_tangents.experimental``
  (no TensorFlow import), then ``import neural_tangents``. Idempotent.

  Returns:
    The ``neural_tangents`` module (``nt.stax``, ``nt.empirical_ntk_fn``, ...).

  Raises:
    ImportError: neural-tangents is not installed; the message says how to install it.
  """
  if 'neural_tangents' in sys.modules and hasattr(sys.modules['neural_tangents'], 'stax'):
    return sys.modules['neural_tangents']
  if importlib.util.find_spec('neural_tangents') is None:
    raise ImportError('neural-tangents is needed for objective.kernel nt_ntk / nt_nngp '
                      f'(KIP); install it with: {INSTALL_HINT}')
  _restore_jax_names()
  if 'neural_tangents.experimental' not in sys.modules:
    stub = types.ModuleType('neural_tangents.experimental')
    stub.__doc__ = ('Stubbed by jaxdd.nt_compat: the TensorFlow ports of neural-tangents '
                    'are not used by jaxdd and would import TensorFlow.')
    sys.modules['neural_tangents.experimental'] = stub
  return importlib.import_module('neural_tangents')


def convnet_kernel_fn(depth: int = 3, width: int = 128, *, arch: str = 'conv',
                      W_std: float = 2 ** 0.5, b_std: float = 0.1,
                      num_outputs: int = 1, parameterization: str = 'ntk'):
  """KIP's networks as a neural-tangents ``stax`` triple (init_fn, apply_fn, kernel_fn).

  ``arch='conv'`` (the ConvNet of KIP's NeurIPS 2021 paper, "Dataset distillation with
  infinitely wide convolutional networks", §3 and App. A):

      depth × [Conv(width, 3×3, SAME, W_std, b_std) → ReLU → AvgPool(2×2, stride 2)]
      → Flatten → Dense(num_outputs, W_std, b_std)

  ``arch='fc'`` (``FullyConnectedNetwork`` of ``google-research:kip/KIP.ipynb``):

      Flatten → depth × [Dense(width, W_std, b_std) → ReLU] → Dense(num_outputs, ...)

  All layers use the NTK parameterization (KIP's default), i.e. pre-activations
  ``W_std/√fan_in · W x + b_std · b`` with standard-normal W, b. ``kernel_fn(x1, x2,
  get)`` takes images [N, H, W, C] (``arch='conv'``) or any [N, ...] (``'fc'``) and
  returns [N1, N2] for get='nngp' or 'ntk' (infinite width: independent of ``width``,
  which only sizes the finite network of ``init_fn``/``apply_fn``). ``width`` and
  ``num_outputs`` do not change the infinite-width kernels.

  Where jaxdd differs: KIP's notebook enables x64; here the kernel is meant for
  float32 (module doc). Each ConvNet block needs H and W ≥ 2 for its pooling.

  Args:
    depth: number of conv blocks ('conv') or hidden Dense layers ('fc'); ≥ 0 ('fc'),
      ≥ 1 ('conv').
    width: channels / hidden units of the finite network.
    arch: 'conv' or 'fc'.
    W_std: weight standard deviation (KIP: √2).
    b_std: bias standard deviation (KIP: 0.1).
    num_outputs: outputs of the last Dense layer.
    parameterization: 'ntk' (KIP) or 'standard'.

  Returns:
    (init_fn, apply_fn, kernel_fn) of ``neural_tangents.stax.serial``.

  Raises:
    ImportError: neural-tangents is not installed.
    ValueError: ``arch`` is not 'conv' or 'fc', or ``depth`` is negative.
  """
  if arch not in ARCHS:
    raise ValueError(f'arch must be one of {", ".join(ARCHS)}, got {arch!r}')
  if depth < (1 if arch == 'conv' else 0):
    raise ValueError(f'depth must be >= {1 if arch == "conv" else 0} for arch {arch!r}, '
                     f'got {depth}')
  stax = import_neural_tangents().stax
  kw = {'W_std': W_std, 'b_std': b_std, 'parameterization': parameterization}
  layers = []
  if arch == 'conv':
    for _ in range(depth):
      layers += [stax.Conv(width, (3, 3), padding='SAME', **kw), stax.Relu(),
                 stax.AvgPool((2, 2), strides=(2, 2))]
    layers += [stax.Flatten()]
  else:
    layers += [stax.Flatten()]
    for _ in range(depth):
      layers += [stax.Dense(width, **kw), stax.Relu()]
  layers += [stax.Dense(num_outputs, **kw)]
  return stax.serial(*layers)
