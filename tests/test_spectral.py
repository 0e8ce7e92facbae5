"""UniDD's Table-1 filters and CFM against their defining formulas in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdd.errors import ConfigError
from jaxdd.sre.losses import spectral as sp

N, D, C = 12, 5, 3


def _data(seed=0, n=N):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, D))
  y = np.eye(C)[rng.integers(0, C, n)]
  return x, y


def _j(*arrays):
  return [jnp.asarray(a, jnp.float32) for a in arrays]


def test_ffc_flc_and_frepo_filter_equal_their_formulas():
  x, y = _data()
  jx, jy = _j(x, y)
  np.testing.assert_allclose(sp.ffc(jx), x.T @ x / N, rtol=1e-5)
  np.testing.assert_allclose(sp.flc(jx, jy, normalize=False), x.T @ y, rtol=1e-5)
  beta = 0.3
  (got,) = sp.frepo_filter(jx, jy, beta=beta, normalize=False)
  np.testing.assert_allclose(got, np.linalg.solve(x.T @ x + beta * np.eye(D), x.T @ y),
                             rtol=1e-4, atol=1e-6)
  (got,) = sp.frepo_filter(jx, jy, beta=beta)
  np.testing.assert_allclose(
      got, np.linalg.solve(x.T @ x / N + beta * np.eye(D), x.T @ y / N), rtol=1e-4,
      atol=1e-6)
  # Eq. 14 = Eq. 15: the KRR weights Xᵀ(XXᵀ + βI)⁻¹Y (push-through identity).
  krr = x.T @ np.linalg.solve(x @ x.T + beta * np.eye(N), y)
  (primal,) = sp.frepo_filter(jx, jy, beta=beta, normalize=False)
  np.testing.assert_allclose(primal, krr, rtol=1e-4, atol=1e-6)


def test_dm_dc_mtt_filters_equal_their_formulas():
  x, y = _data(1)
  jx, jy = _j(x, y)
  psi, phi = x.T @ x / N, x.T @ y / N
  (dm,) = sp.dm_filter(jx, jy)
  np.testing.assert_allclose(dm, phi, rtol=1e-5, atol=1e-7)
  dc_psi, dc_phi = sp.dc_filter(jx, jy)
  np.testing.assert_allclose(dc_psi, psi, rtol=1e-5)
  np.testing.assert_allclose(dc_phi, phi, rtol=1e-5, atol=1e-7)
  alpha, steps = 0.2, 4
  power, acc = sp.mtt_filter(jx, jy, alpha=alpha, steps=steps)
  a = np.eye(D) - alpha * psi
  np.testing.assert_allclose(power, np.linalg.matrix_power(a, steps), rtol=1e-4, atol=1e-6)
  ref = sum(np.linalg.matrix_power(a, p) @ phi for p in range(steps))
  np.testing.assert_allclose(acc, ref, rtol=1e-4, atol=1e-6)
  # Eq. 9: the terms are the linear classifier after P full-batch GD steps from W0.
  w0 = np.random.default_rng(2).normal(size=(D, C))
  w = w0.copy()
  for _ in range(steps):
    w = w - alpha * (psi @ w - phi)      # gradient of ‖XW − Y‖²/(2n)
  np.testing.assert_allclose(np.asarray(power) @ w0 + alpha * np.asarray(acc), w,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('method,kw,signal', [
    ('frepo', {'beta': 0.2}, 'phi'), ('dc', {}, 'eye'), ('dm', {}, 'phi'),
    ('mtt', {'alpha': 0.3, 'steps': 3}, 'eye')])
def test_filters_act_on_eigenvalues(method, kw, signal):
  """Eq. 2: f(Ψ) g = U f(Λ) Uᵀ g, with f the scalar filter of Table 1."""
  x, y = _data(3)
  jx, jy = _j(x, y)
  terms = {'frepo': lambda: sp.frepo_filter(jx, jy, **kw)[0],
           'dc': lambda: sp.dc_filter(jx, jy)[0],
           'dm': lambda: sp.dm_filter(jx, jy)[0],
           'mtt': lambda: sp.mtt_filter(jx, jy, **kw)[0]}
  g = sp.flc(jx, jy) if signal == 'phi' else jnp.eye(D)
  resp = lambda lam: sp.filter_response(method, lam, **kw)
  np.testing.assert_allclose(sp.spectral_filter(sp.ffc(jx), g, resp), terms[method](),
                             rtol=1e-4, atol=1e-5)


def test_unidd_loss_matches_numpy():
  x, y = _data(4)
  xs, ys = _data(5, n=6)
  jx, jy, jxs, jys = _j(x, y, xs, ys)
  psi, phi = x.T @ x / N, x.T @ y / N
  psis, phis = xs.T @ xs / 6, xs.T @ ys / 6
  sq = lambda m: float(np.sum(m ** 2))
  beta, alpha, p, q = 0.2, 0.1, 3, 2
  frepo = sq(np.linalg.solve(psi + beta * np.eye(D), phi)
             - np.linalg.solve(psis + beta * np.eye(D), phis))
  mp = np.linalg.matrix_power
  a, b = np.eye(D) - alpha * psi, np.eye(D) - alpha * psis
  mtt = sq(mp(a, p) - mp(b, q)) + alpha * sq(
      sum(mp(a, i) @ phi for i in range(p)) - sum(mp(b, i) @ phis for i in range(q)))
  expected = {'dm': sq(phi - phis), 'dc': sq(psi - psis) + sq(phi - phis),
              'frepo': frepo, 'mtt': mtt}
  for method, value in expected.items():
    got = sp.unidd_loss(method, jx, jy, jxs, jys, beta=beta, alpha=alpha,
                        steps_real=p, steps_syn=q)
    np.testing.assert_allclose(float(got), value, rtol=1e-4, err_msg=method)
  with pytest.raises(ConfigError, match="method='kip'"):
    sp.unidd_loss('kip', jx, jy, jxs, jys)


def test_cfm_beta_curriculum():
  ipc, beta = 10, 0.1
  got = np.asarray(sp.cfm_beta(np.arange(ipc), ipc, beta))
  # synthesis_small.py: [beta * (1 + cos(pi * ipc / IPC)) / 2 for ipc in range(IPC)]
  ref = [beta * (1.0 + np.cos(np.pi * k / ipc)) / 2 for k in range(ipc)]
  np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
  assert got[0] == pytest.approx(beta) and got[5] == pytest.approx(beta / 2)
  assert np.all(np.diff(got) < 0)
  np.testing.assert_allclose(sp.cfm_beta(np.arange(3), 3, beta, cosine=False), beta)
  with pytest.raises(ConfigError, match='ipc'):
    sp.cfm_beta(0, 0)


def test_emu_weights_give_the_mean_over_batches():
  rng = np.random.default_rng(6)
  stats = [(rng.normal(size=(3, 3)), rng.normal(size=3)) for _ in range(4)]
  running = (jnp.zeros((3, 3)), jnp.zeros(3))
  for k, cur in enumerate(stats, start=1):
    used = sp.emu_update(running, tuple(_j(*cur)), k)
    # weights 1 − 1/k and 1/k on the finished batches and the current one
    np.testing.assert_allclose(used[0], np.mean([s[0] for s in stats[:k]], 0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(used[1], np.mean([s[1] for s in stats[:k]], 0),
                               rtol=1e-5, atol=1e-6)
    running = used
  # At k = 1 the (empty) running statistics get weight 0.
  first = sp.emu_update((jnp.full(3, 7.0),), (jnp.ones(3),), 1)
  np.testing.assert_allclose(first[0], 1.0)


def test_cfm_batch_stats_match_numpy():
  rng = np.random.default_rng(7)
  feat = rng.normal(size=(4, 3, 3, 5)) + 2
  labels = np.array([0, 2, 1, 2])
  onehot = np.eye(3)[labels]
  cov, phi = sp.cfm_batch_stats(*_j(feat, onehot), signal='class')
  rows = feat.reshape(-1, 5)
  np.testing.assert_allclose(cov, np.cov(rows.T, bias=True), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(phi, feat.mean((1, 2)).T @ onehot / 4, rtol=1e-5)
  _, mean = sp.cfm_batch_stats(*_j(feat), signal='mean')
  np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-5)
  with pytest.raises(ConfigError, match='signal'):
    sp.cfm_batch_stats(jnp.zeros((1, 1, 1, 2)), signal='mix')


def _spd(rng, d):
  a = rng.normal(size=(d, 2 * d))
  return a @ a.T / (2 * d)


def test_cfm_layer_and_total_loss_match_numpy():
  rng = np.random.default_rng(8)
  d, k, beta = 4, 3, 0.05
  layers = [(_spd(rng, d), rng.normal(size=(d, k)), _spd(rng, d), rng.normal(size=(d, k)))
            for _ in range(2)]

  def ref_layer(ct, st, cs, ss, kind):
    if kind == 'hfm':   # the explicit inverse, as the reference the solve must equal
      ft, fs = np.linalg.inv(ct + beta * np.eye(d)), np.linalg.inv(cs + beta * np.eye(d))
    else:
      ft, fs = ct, cs
    return np.linalg.norm(ft - fs) + np.linalg.norm(ft @ st - fs @ ss)

  for kind in ('hfm', 'lfm'):
    for ct, st, cs, ss in layers:
      got = sp.cfm_layer_loss(*_j(ct, st, cs, ss), beta, kind)
      np.testing.assert_allclose(float(got), ref_layer(ct, st, cs, ss, kind), rtol=1e-4)
  # A vector signal (the code's channel mean).
  ct, st, cs, ss = layers[0]
  got = sp.cfm_layer_loss(*_j(ct, st[:, 0], cs, ss[:, 0]), beta)
  np.testing.assert_allclose(float(got), ref_layer(ct, st[:, :1], cs, ss[:, :1], 'hfm'),
                             rtol=1e-4)

  logits = rng.normal(size=(3, k))
  labels = np.array([2, 0, 1])
  lse = np.log(np.exp(logits).sum(1))
  ce = np.mean(lse - logits[np.arange(3), labels])
  expected = ce + 0.1 * sum(ref_layer(*l, 'hfm') for l in layers)
  syn = [tuple(_j(cs, ss)) for _, _, cs, ss in layers]
  teacher = [tuple(_j(ct, st)) for ct, st, _, _ in layers]
  loss, aux = jax.jit(sp.cfm_loss)(jnp.asarray(logits, jnp.float32), jnp.asarray(labels),
                                   syn, teacher, beta)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
  np.testing.assert_allclose(float(aux['ce']), ce, rtol=1e-5)
  with pytest.raises(ConfigError, match='filter'):
    sp.cfm_layer_loss(*_j(ct, st, cs, ss), beta, 'band')


def test_plot_filtered_spectra_writes_png_of_the_spectra(tmp_path):
  x, _ = _data(9, n=20)
  xs, _ = _data(10, n=8)
  path = tmp_path / 'spectra.png'
  series = sp.plot_filtered_spectra(x, xs, str(path), method='frepo', beta=0.5)
  with Image.open(path) as img:
    assert img.format == 'PNG' and img.size == (640, 400)
    colours = {c for _, c in img.convert('RGB').getcolors(1 << 16)}
  assert (31, 119, 180) in colours and (255, 127, 14) in colours
  lam = np.sort(np.linalg.eigvalsh(x.T @ x / 20))[::-1]
  np.testing.assert_allclose(series['real'], lam, rtol=1e-10)
  np.testing.assert_allclose(series['real_filtered'], 1 / (lam + 0.5), rtol=1e-5)
  np.testing.assert_allclose(series['syn'],
                             np.sort(np.linalg.eigvalsh(xs.T @ xs / 8))[::-1], rtol=1e-10)


def test_cfm_gradient_matches_finite_differences_and_is_zero_at_a_match():
  rng = np.random.default_rng(11)
  feat = rng.normal(size=(3, 2, 2, 4))
  onehot = np.eye(3)
  ct, st = _spd(rng, 4), rng.normal(size=(4, 3)) * 0.1
  beta = 0.5

  def loss(f):
    cov, sig = sp.cfm_batch_stats(f, jnp.asarray(onehot, f.dtype))
    return sp.cfm_layer_loss(jnp.asarray(ct, f.dtype), jnp.asarray(st, f.dtype), cov,
                             sig, beta)

  with jax.enable_x64(True):
    f64 = jnp.asarray(feat)
    direction = jnp.asarray(rng.normal(size=feat.shape))
    eps = 1e-6
    fd = (loss(f64 + eps * direction) - loss(f64 - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.vdot(jax.grad(loss)(f64), direction)), float(fd),
                               rtol=1e-5)
  # Synthetic statistics equal to the teacher's: loss 0 and a zero (not NaN) gradient.
  cov, sig = sp.cfm_batch_stats(*_j(feat, onehot))
  g = jax.grad(lambda c: sp.cfm_layer_loss(cov, sig, c, sig, beta))(cov)
  assert np.all(np.asarray(g) == 0)
