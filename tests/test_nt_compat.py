"""neural-tangents on current jax: kernels against closed forms and J·Jᵀ (tiny shapes).

The kernel tests skip only when neural-tangents is not installed (``jaxdd[nt]``); with
it installed they must run and pass.
"""

import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import nt_compat


def _skip_without_nt():
  # A guard only: the tests run whenever neural-tangents is installed. Not
  # pytest.importorskip('neural_tangents'): that would import it *without* the
  # compatibility layer, which fails on current jax (and loads TensorFlow).
  if importlib.util.find_spec('neural_tangents') is None:
    pytest.skip("neural-tangents not installed (pip install 'jaxdd[nt]')")


@pytest.fixture(scope='module')
def nt():
  _skip_without_nt()
  return nt_compat.import_neural_tangents()


def _arccos1(k11, k22, k12):
  """Cho & Saul's order-1 arc-cosine kernel, E[relu(u) relu(v)] for (u, v) ~ N(0, K),
  and E[relu'(u) relu'(v)] (the NTK's derivative kernel)."""
  norm = np.sqrt(k11 * k22)
  theta = np.arccos(np.clip(k12 / norm, -1.0, 1.0))
  value = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
  return value, (np.pi - theta) / (2 * np.pi)


def test_import_restores_names_and_loads_no_tensorflow():
  # A fresh interpreter: the names must be restored by the module, not by a test, and
  # TensorFlow (neural_tangents.experimental) must stay unloaded.
  _skip_without_nt()
  code = ('import sys; from jaxdd import nt_compat; nt = nt_compat.import_neural_tangents(); '
          'import jax.util, jax.core, jax.interpreters.ad as ad; '
          'assert callable(jax.util.safe_map) and callable(jax.util.safe_zip); '
          'assert all(hasattr(jax.core, n) for n in '
          '("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive")); '
          'assert hasattr(ad, "zeros_like_p"); '
          'assert nt_compat.import_neural_tangents() is nt; '
          'print(nt.__version__, "tensorflow" in sys.modules)')
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=env, timeout=120, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-2:] == ['0.6.5', 'False']


def test_missing_package_gives_install_hint(monkeypatch):
  monkeypatch.delitem(sys.modules, 'neural_tangents', raising=False)
  real_find_spec = nt_compat.importlib.util.find_spec
  monkeypatch.setattr(nt_compat.importlib.util, 'find_spec',
                      lambda name, *a: None if name == 'neural_tangents'
                      else real_find_spec(name, *a))
  with pytest.raises(ImportError, match=r"pip install 'jaxdd\[nt\]'"):
    nt_compat.import_neural_tangents()


def test_bad_arch_and_depth_raise():
  with pytest.raises(ValueError, match='arch'):
    nt_compat.convnet_kernel_fn(1, arch='resnet')
  with pytest.raises(ValueError, match='depth'):
    nt_compat.convnet_kernel_fn(0, arch='conv')


@pytest.mark.parametrize('w_std,b_std', [(2 ** 0.5, 0.1), (1.3, 0.0), (0.7, 0.5)])
def test_dense_relu_dense_kernels_equal_arccos_closed_form(nt, w_std, b_std):
  """Flatten → Dense → ReLU → Dense in NTK parameterization:
  Σ¹ = w²·x·x'/d + b², Σ² = w²·arccos₁(Σ¹) + b², Θ² = Σ² + w²·Θ¹·arccos₀(Σ¹), Θ¹ = Σ¹."""
  x = np.random.default_rng(0).normal(size=(4, 3, 2, 1)).astype(np.float32)
  _, _, kernel_fn = nt_compat.convnet_kernel_fn(1, 16, arch='fc', W_std=w_std, b_std=b_std)
  kernel_fn = jax.jit(kernel_fn, static_argnames='get')   # eager nt is ~10x slower
  got_nngp = np.asarray(kernel_fn(jnp.asarray(x), None, 'nngp'))
  got_ntk = np.asarray(kernel_fn(jnp.asarray(x), None, 'ntk'))
  flat = x.reshape(4, -1).astype(np.float64)
  s1 = w_std ** 2 * flat @ flat.T / flat.shape[1] + b_std ** 2
  d = np.diag(s1)
  relu, relu_dot = _arccos1(d[:, None], d[None, :], s1)
  s2 = w_std ** 2 * relu + b_std ** 2
  ntk = s2 + w_std ** 2 * s1 * relu_dot
  # float32 kernel against a float64 closed form (arccos is steep near the diagonal).
  np.testing.assert_allclose(got_nngp, s2, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got_ntk, ntk, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('arch', ['conv', 'fc'])
def test_empirical_ntk_equals_jacobian_product(nt, arch):
  """nt.empirical_ntk_fn (default implementation) = J(x1)·J(x2)ᵀ, J from jax.jacobian of
  the flattened parameters, for every pair of outputs."""
  x1 = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
  x2 = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
  init_fn, apply_fn, _ = nt_compat.convnet_kernel_fn(1, 3, arch=arch, num_outputs=2)
  _, params = init_fn(jax.random.key(2), x1.shape)
  got = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=()))(x1, x2, params)   # [3,2,2,2]

  leaves, treedef = jax.tree_util.tree_flatten(params)
  sizes = [l.size for l in leaves]
  vec = jnp.concatenate([l.ravel() for l in leaves])

  def f(v, x):
    parts = jnp.split(v, np.cumsum(sizes)[:-1])
    p = jax.tree_util.tree_unflatten(treedef, [a.reshape(l.shape)
                                               for a, l in zip(parts, leaves)])
    return apply_fn(p, x)

  jac = jax.jit(jax.jacobian(f))
  j1 = np.asarray(jac(vec, x1), np.float64)   # [3, 2, P]
  j2 = np.asarray(jac(vec, x2), np.float64)
  expected = np.einsum('iap,jbp->ijab', j1, j2)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)
  # trace_axes=(-1,) (what KIP-style kernels use) is the mean over the outputs.
  traced = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,)))(x1, x2, params)
  np.testing.assert_allclose(np.asarray(traced), np.einsum('iap,jap->ij', j1, j2) / 2,
                             rtol=1e-4, atol=1e-5)


def test_conv_kernel_is_jittable_float32_and_psd(nt):
  x = jax.random.normal(jax.random.key(0), (5, 4, 4, 1))
  _, _, kernel_fn = nt_compat.convnet_kernel_fn(2, arch='conv')
  kernel_fn = jax.jit(kernel_fn, static_argnames='get')
  k = kernel_fn(x, x, get='ntk')
  assert k.dtype == jnp.float32 and k.shape == (5, 5)
  k = np.asarray(k, np.float64)
  np.testing.assert_allclose(k, k.T, rtol=1e-5)
  assert np.linalg.eigvalsh(k).min() > 0
  # x1 vs x2 blocks agree with the joint kernel (the KRR uses K_ts and K_ss separately).
  np.testing.assert_allclose(np.asarray(kernel_fn(x[:2], x[2:], get='ntk')), k[:2, 2:],
                             rtol=1e-5)

