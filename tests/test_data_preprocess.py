"""Normalisation and the two ZCAs, each checked against an independent numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import data as data_lib
from jaxdd.data import preprocess
from jaxdd.errors import ConfigError, DataError

SHAPE = (3, 2, 2)   # D = 12: exact eigen-decompositions stay instantaneous


def correlated_images(n, seed=0, shape=SHAPE):
  """[n, *shape] float64 images with a strongly non-diagonal covariance and a mean."""
  rng = np.random.default_rng(seed)
  d = int(np.prod(shape))
  mixing = rng.normal(size=(d, d)) * np.linspace(0.2, 2.0, d)
  flat = rng.normal(size=(n, d)) @ mixing + rng.uniform(0.2, 0.8, size=d)
  return flat.reshape((n,) + shape)


def reference_whitening(cov, shift):
  """U diag(1/sqrt(S + shift)) U^T from an SVD (the eigh-free way the papers write it)."""
  u, s, _ = np.linalg.svd(cov)
  return u @ np.diag(1.0 / np.sqrt(s + shift)) @ u.T


# ---- raw (MTT / kornia) ----------------------------------------------------------


def test_raw_zca_whitens_to_identity_with_tiny_eps():
  x = correlated_images(20000)
  zca = data_lib.zca_fit_raw(x, eps=1e-6)
  white = np.asarray(data_lib.zca_apply(zca, x), np.float64).reshape(len(x), -1)
  np.testing.assert_allclose(white.mean(0), 0.0, atol=1e-3)
  np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(white.shape[1]), atol=2e-3)


def test_raw_zca_matches_direct_numpy():
  x = correlated_images(500)
  flat = x.reshape(len(x), -1)
  zca = data_lib.zca_fit_raw(x, eps=0.1)
  w = reference_whitening(np.cov(flat, rowvar=False), 0.1)   # np.cov is unbiased (N - 1)
  np.testing.assert_allclose(zca.mean, flat.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(zca.whiten, w, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(zca.whiten @ zca.unwhiten, np.eye(12), atol=1e-4)
  expected = ((flat - flat.mean(0)) @ w).reshape(x.shape)
  np.testing.assert_allclose(data_lib.zca_apply(zca, x.astype(np.float32)), expected,
                             rtol=1e-4, atol=1e-4)
  assert zca.shape == SHAPE and not zca.per_image_normalize


def test_raw_zca_inverse_is_identity():
  x = correlated_images(300).astype(np.float32)
  zca = data_lib.zca_fit_raw(x)
  np.testing.assert_allclose(data_lib.zca_invert(zca, data_lib.zca_apply(zca, x)), x,
                             atol=1e-4)


def test_zca_apply_runs_under_jit_on_jnp():
  x = correlated_images(200).astype(np.float32)
  for zca in (data_lib.zca_fit_raw(x), data_lib.zca_fit_krr(x)):
    out = jax.jit(lambda v, z=zca: data_lib.zca_apply(z, v))(jnp.asarray(x))
    np.testing.assert_allclose(out, data_lib.zca_apply(zca, x), rtol=1e-4, atol=1e-4)
    back = jax.jit(lambda v, z=zca: data_lib.zca_invert(z, v))(out)
    np.testing.assert_allclose(back, data_lib.zca_invert(zca, np.asarray(out)), atol=1e-4)


# ---- krr (KIP / FRePo / RaT-BPTT / PoDD) ------------------------------------------


def slow_krr_reference(x, reg):
  """Step by step: per-image centring and L2 norm, X^T X / N, reg * trace / D."""
  rows = []
  for img in x:
    v = img.ravel().astype(np.float64)
    v = v - v.sum() / v.size
    rows.append(v / np.sqrt(np.sum(v * v)))
  pre = np.stack(rows)
  cov = sum(np.outer(r, r) for r in rows) / len(rows)
  w = reference_whitening(cov, reg * np.trace(cov) / cov.shape[0])
  return pre, w


def test_krr_zca_matches_slow_reference():
  x = correlated_images(400, seed=1)
  pre, w = slow_krr_reference(x, 0.1)
  zca = data_lib.zca_fit_krr(x, reg=0.1)
  assert zca.per_image_normalize and zca.shape == SHAPE
  np.testing.assert_array_equal(zca.mean, 0.0)
  np.testing.assert_allclose(zca.whiten, w, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(data_lib.zca_apply(zca, x.astype(np.float32)),
                             (pre @ w).reshape(x.shape), rtol=1e-4, atol=1e-4)


def test_krr_zca_inverts_to_per_image_normalised_images():
  x = correlated_images(300, seed=2).astype(np.float32)
  zca = data_lib.zca_fit_krr(x)
  back = np.asarray(data_lib.zca_invert(zca, data_lib.zca_apply(zca, x))).reshape(len(x), -1)
  np.testing.assert_allclose(back.mean(axis=1), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-4)
  pre, _ = slow_krr_reference(x, 0.1)
  np.testing.assert_allclose(back, pre, atol=1e-4)


def test_krr_zca_keeps_constant_images_finite():
  x = correlated_images(50).astype(np.float32)
  x[0] = 0.5
  zca = data_lib.zca_fit_krr(x)
  out = data_lib.zca_apply(zca, x)
  assert np.isfinite(out).all() and np.allclose(out[0], 0.0)


def test_zca_errors():
  x = correlated_images(10)
  zca = data_lib.zca_fit_raw(x)
  with pytest.raises(DataError, match=r'fitted on images of shape \(3, 2, 2\)'):
    data_lib.zca_apply(zca, np.zeros((4, 2, 2, 3)))
  with pytest.raises(DataError, match='at least 2 images'):
    data_lib.zca_fit_raw(x[:1])
  with pytest.raises(ConfigError, match='eps must be positive'):
    data_lib.zca_fit_raw(x, eps=0.0)
  with pytest.raises(ConfigError, match='reg must be positive'):
    data_lib.zca_fit_krr(x, reg=-1.0)


# ---- normalisation and its inverse -------------------------------------------------


def test_stats_known_and_computed():
  mean, std = preprocess.known_stats('svhn_cropped', 3)
  np.testing.assert_allclose(mean, [0.4377, 0.4438, 0.4728])
  np.testing.assert_allclose(preprocess.known_stats('mnist', 1)[1], [0.3081])
  assert preprocess.known_stats('cifar10', 1) is None      # channel count must agree
  assert preprocess.known_stats('my_data', 3) is None
  x = np.random.default_rng(0).uniform(size=(50, 4, 4, 3)).astype(np.float32)
  x[..., 2] = 0.25                                            # a constant channel
  mean, std = preprocess.compute_stats(x)
  np.testing.assert_allclose(mean[:2], [x[..., 0].mean(), x[..., 1].mean()], rtol=1e-5)
  np.testing.assert_allclose(std[:2], [x[..., 0].std(), x[..., 1].std()], rtol=1e-5)
  assert mean[2] == pytest.approx(0.25) and std[2] == 1.0


def test_denormalize_inverts_normalize():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(5, 4, 4, 3)).astype(np.float32)
  mean, std = np.array([0.1, 0.5, 0.9], np.float32), np.array([0.2, 0.3, 0.4], np.float32)
  z = data_lib.normalize(x, mean, std)
  np.testing.assert_allclose((z[..., 1] * 0.3) + 0.5, x[..., 1], rtol=1e-5)
  np.testing.assert_allclose(data_lib.denormalize((mean, std), z), x, atol=1e-6)


def test_denormalize_inverts_dataset_preprocessing():
  pixels = data_lib.load_dataset('digits', normalize=False)
  for zca in ('none', 'raw'):
    ds = data_lib.load_dataset('digits', zca=zca)
    np.testing.assert_allclose(data_lib.denormalize(ds, ds.x_train), pixels.x_train,
                               atol=1e-4)
    np.testing.assert_allclose(data_lib.denormalize(ds, ds.x_test[0]), pixels.x_test[0],
                               atol=1e-4)
  raw = data_lib.load_dataset('digits', zca='raw')
  np.testing.assert_allclose(
      data_lib.denormalize((raw.mean, raw.std, raw.zca), raw.x_test), pixels.x_test,
      atol=1e-4)


def test_denormalize_krr_gives_display_scale_images():
  ds = data_lib.load_dataset('digits', zca='krr')
  out = data_lib.denormalize(ds, ds.x_train[:20])
  assert out.shape == (20, 8, 8, 1) and out.dtype == np.float32
  # Per-pixel RMS 1 in normalised units, then * std + mean.
  rms = np.sqrt(np.mean(((out - ds.mean) / ds.std) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(rms, 1.0, rtol=1e-3)
  with pytest.raises(TypeError, match='denormalize expects'):
    data_lib.denormalize(3.0, out)
