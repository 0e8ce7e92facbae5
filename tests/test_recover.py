"""Sequential-batch recover (SRe2L, CFM, EDC): losses against numpy recomputations,
augmentation against explicit loops, the loop's bookkeeping against closed forms."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import models
from jaxdd.sre import recover as rc
from jaxdd.errors import ConfigError
from jaxdd.sre.losses import statistics as st

SHAPE = (8, 8, 1)
K = 3
NOAUG = dict(jitter=0, crop_scale=None, flip=False)


@functools.lru_cache(maxsize=None)
def _teacher(seed=0, width=8):
  """A BN ConvNet whose running statistics come from train-mode forwards (built once
  per (seed, width); nothing mutates it)."""
  model = models.get_model('convnet', K, image_shape=SHAPE, width=width, depth=2,
                           norm='batchnorm')
  variables = models.init_model(model, jax.random.key(seed), SHAPE)
  rng = np.random.default_rng(seed + 100)
  for _ in range(3):
    x = jnp.asarray(rng.normal(0.3, 1.2, size=(16,) + SHAPE), jnp.float32)
    _, variables = jax.jit(functools.partial(models.apply_model, model, train=True))(
        variables, x)
  return model, variables


def _data(n=30, seed=1):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n,) + SHAPE).astype(np.float32), np.arange(n) % K


def _np_ce(logits, labels):
  logits = np.asarray(logits, np.float64)
  m = logits.max(1, keepdims=True)
  lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
  return np.mean(lse - logits[np.arange(len(labels)), labels])


def _taps(model, variables, x, kinds, skip):
  logits, taps = st.layer_inputs(model, variables, jnp.asarray(x), kinds=kinds, skip=skip)
  return (np.asarray(logits, np.float64),
          {k: np.asarray(v, np.float64) for k, v in taps.items()})


def _norm(a):
  return float(np.sqrt(np.sum(np.square(a))))


def _info(k=0, beta=0.1):
  return rc.StepInfo(jnp.int32(k), jnp.int32(0), jnp.float32(beta))


# ---------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize('field,value', [
    ('method', 'dm'), ('init', 'zeros'), ('curriculum', 'linear'), ('kind', 'bandpass'),
    ('cfm_signal', 'mix'), ('edc_form', 'both'), ('jitter', -1), ('ipc', 0),
    ('iterations', 2.5), ('lr', 0.0), ('betas', (0.5,)), ('crop_scale', (0.5, 2.0)),
    ('crop_ratio', (2.0, 1.0)), ('smoothing_momentum', 1.5), ('pixel_range', (1.0, 0.0)),
    ('norm_std', (0.0,))])
def test_bad_config_raises_naming_the_field(field, value):
  cfg = rc.RecoverConfig()._replace(**{field: value})
  if field == 'norm_std':
    cfg = cfg._replace(norm_mean=(0.5,))
  with pytest.raises(ConfigError, match=field):
    rc.check_recover_config(cfg)


def test_default_configs_are_the_authors_cifar_values():
  s, c, e = (rc.default_config(m) for m in ('sre2l', 'cfm', 'edc'))
  assert (s.lr, s.iterations, s.init, s.jitter, s.crop_scale, s.r_bn) == (
      0.25, 1000, 'noise', 4, None, 0.01)
  assert (c.lr, c.iterations, c.init, c.crop_scale, c.flip, c.cfm_beta, c.cfm_eta) == (
      0.25, 1000, 'real', (0.08, 1.0), True, 0.1, 0.1)
  assert (e.lr, e.iterations, e.init, e.smoothing_momentum, e.edc_alpha, e.flatness) == (
      0.05, 75, 'real', 0.8, 0.5, False)
  assert s.betas == c.betas == e.betas == (0.5, 0.9)


def test_real_init_without_images_raises():
  cfg = rc.default_config('cfm', ipc=1, iterations=1)
  teacher = _teacher()
  with pytest.raises(ConfigError, match='real_init'):
    rc.synthesize(jax.random.key(0), teacher, [], cfg, K, SHAPE, log=lambda s: None)


def test_clip_bounds_are_the_normalised_pixel_range():
  cfg = rc.RecoverConfig(norm_mean=(0.4914, 0.4822), norm_std=(0.2023, 0.1994))
  lo, hi = rc.clip_bounds(cfg)
  np.testing.assert_allclose(lo, [-0.4914 / 0.2023, -0.4822 / 0.1994], rtol=1e-6)
  np.testing.assert_allclose(hi, [0.5086 / 0.2023, 0.5178 / 0.1994], rtol=1e-5)


# ---------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------
def _np_resized_crop(x, top, left, h, w):
  """PyTorch bilinear resize (align_corners=False) of a crop, pixel by pixel."""
  n, hh, ww, c = x.shape
  crop = x[:, top:top + h, left:left + w]

  def src(i, size, out):
    s = max((i + 0.5) * size / out - 0.5, 0.0)
    i0 = int(math.floor(s))
    return i0, min(i0 + 1, size - 1), s - i0

  out = np.zeros_like(x)
  for i in range(hh):
    a0, a1, la = src(i, h, hh)
    for j in range(ww):
      b0, b1, lb = src(j, w, ww)
      out[:, i, j] = ((1 - la) * (1 - lb) * crop[:, a0, b0]
                      + (1 - la) * lb * crop[:, a0, b1]
                      + la * (1 - lb) * crop[:, a1, b0] + la * lb * crop[:, a1, b1])
  return out


def test_augment_matches_crop_resize_flip_roll_loop():
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype(np.float32)
  cfg = rc.RecoverConfig(jitter=3, crop_scale=(0.08, 1.0), flip=True)
  seen_shift = set()
  for seed in range(6):
    p = jax.device_get(rc.augment_params(jax.random.key(seed), cfg, 8, 8))
    top, left, h, w = (int(p[k]) for k in ('top', 'left', 'height', 'width'))
    assert 1 <= h <= 8 and 1 <= w <= 8 and top + h <= 8 and left + w <= 8
    assert 0 <= p['shift_h'] <= 3 and 0 <= p['shift_w'] <= 3
    ref = _np_resized_crop(x.astype(np.float64), top, left, h, w)
    if p['flip']:
      ref = ref[:, :, ::-1]
    ref = np.roll(ref, (int(p['shift_h']), int(p['shift_w'])), axis=(1, 2))
    got = jax.jit(rc.apply_augment)(jnp.asarray(x), p)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    seen_shift.add((int(p['shift_h']), int(p['shift_w'])))
  assert len(seen_shift) > 1


def test_crop_of_whole_image_is_identity_and_area_follows_scale():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 8, 8, 1)), jnp.float32)
  ident = dict(top=0, left=0, height=8, width=8, flip=False, shift_h=0, shift_w=0)
  np.testing.assert_allclose(rc.apply_augment(x, ident), x, atol=1e-6)
  cfg = rc.RecoverConfig(jitter=0, crop_scale=(0.25, 0.5), crop_ratio=(1.0, 1.0))
  for seed in range(5):
    p = rc.augment_params(jax.random.key(seed), cfg, 8, 8)
    side = int(p['height'])
    assert side == int(p['width'])           # ratio 1: square crops
    assert round(math.sqrt(0.25 * 64)) <= side <= round(math.sqrt(0.5 * 64))


# ---------------------------------------------------------------------------------
# Losses, one step, against numpy compositions
# ---------------------------------------------------------------------------------
def test_sre2l_loss_matches_numpy():
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('sre2l', **NOAUG)
  targets = rc.prepare_targets('sre2l', (model, variables), x, y, K, cfg)
  images, labels = jnp.asarray(x[:3]), jnp.arange(K)
  loss, ((_, _), metrics) = rc.METHODS['sre2l'].loss(
      cfg, images, labels, (model, variables), targets, ({}, {'ema_images': images}),
      _info(), jax.random.key(0))
  logits, taps = _taps(model, variables, x[:3], ('batchnorm',), ())
  bn = 0.0
  for i, key in enumerate(sorted(taps)):
    f = taps[key]
    block = key.split(':')[1].split('/')[0]
    run = variables['batch_stats'][block]['norm']
    term = (_norm(np.asarray(run['var']) - f.var(axis=(0, 1, 2)))
            + _norm(np.asarray(run['mean']) - f.mean(axis=(0, 1, 2))))
    bn += (10.0 if i == 0 else 1.0) * term
  ce = _np_ce(logits, np.arange(K))
  np.testing.assert_allclose(metrics['match'], bn, rtol=1e-4)
  np.testing.assert_allclose(loss, ce + 0.01 * bn, rtol=1e-4)


def test_prepare_targets_reports_each_teacher():
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('sre2l', **NOAUG)
  lines = []
  out = rc.prepare_targets('sre2l', [(model, variables)] * 2, x, y, K, cfg,
                           log=lines.append)
  assert len(out) == 2 and len(lines) == 3
  assert '2 teacher(s)' in lines[0] and '1/2' in lines[1] and 'ETA' in lines[1]
  assert '2/2' in lines[2]


@pytest.mark.parametrize('kind,signal', [('hfm', 'mean'), ('lfm', 'class')])
def test_cfm_loss_with_emu_matches_numpy(kind, signal):
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('cfm', kind=kind, cfm_signal=signal, **NOAUG)
  targets = rc.prepare_targets('cfm', (model, variables), x, y, K, cfg)
  # Teacher side by hand: full-train-set population covariance and mean / Φ.
  _, real = _taps(model, variables, x, ('conv',), ('shortcut',))
  onehot = np.eye(K)[y]
  for (cov_t, sig_t), key in zip(targets, sorted(real)):
    rows = real[key].reshape(-1, real[key].shape[-1])
    np.testing.assert_allclose(cov_t, np.cov(rows.T, bias=True), rtol=1e-4, atol=1e-5)
    ref_sig = (rows.mean(0) if signal == 'mean'
               else real[key].mean((1, 2)).T @ onehot / len(y))
    np.testing.assert_allclose(sig_t, ref_sig, rtol=1e-4, atol=1e-6)
  # A non-trivial EMU history: batch index 1, i.e. the 2nd batch (weights 1/2, 1/2).
  rng = np.random.default_rng(3)
  running = [(np.asarray(c) + 0.1 * np.eye(c.shape[0]), np.asarray(s) + rng.normal(
      0, 0.1, s.shape)) for c, s in targets]
  tstate = {'running': jax.tree_util.tree_map(jnp.asarray, running),
            'last': jax.tree_util.tree_map(jnp.zeros_like, targets)}
  images, labels = jnp.asarray(x[3:6]), jnp.arange(K)
  beta = 0.037
  loss, ((new_state, _), metrics) = rc.METHODS['cfm'].loss(
      cfg, images, labels, (model, variables), targets,
      (tstate, {'ema_images': images}), _info(1, beta), jax.random.key(0))
  logits, syn = _taps(model, variables, x[3:6], ('conv',), ('shortcut',))
  match = 0.0
  for (cov_t, sig_t), (cov_r, sig_r), key in zip(targets, running, sorted(syn)):
    f = syn[key]
    rows = f.reshape(-1, f.shape[-1])
    cur_sig = rows.mean(0) if signal == 'mean' else f.mean((1, 2)).T @ np.eye(K) / K
    cov_s = 0.5 * cov_r + 0.5 * np.cov(rows.T, bias=True)
    sig_s = 0.5 * sig_r + 0.5 * cur_sig
    cov_t, sig_t = np.asarray(cov_t, np.float64), np.asarray(sig_t, np.float64)
    eye = np.eye(cov_t.shape[0])
    if kind == 'hfm':
      f_t, f_s = np.linalg.inv(cov_t + beta * eye), np.linalg.inv(cov_s + beta * eye)
    else:
      f_t, f_s = cov_t, cov_s
    match += _norm(f_t - f_s) + _norm(f_t @ sig_t - f_s @ sig_s)
    np.testing.assert_allclose(new_state['last'][sorted(syn).index(key)][0],
                               np.cov(rows.T, bias=True), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(metrics['match'], match, rtol=2e-3)
  np.testing.assert_allclose(loss, _np_ce(logits, np.arange(K)) + 0.1 * match, rtol=2e-3)


def _np_patches(f):
  """[N, H, W, C] -> list over 4x4 patches (row-major) of [N, 16*C] values."""
  n, h, w, c = f.shape
  return [f[:, 4 * u:4 * u + 4, 4 * v:4 * v + 4].reshape(n, -1)
          for u in range(h // 4) for v in range(w // 4)]


def _np_sets(f, is_bn):
  """Per statistic set: (per-image value arrays [N, P, D]) with D the stat dimension."""
  n = f.shape[0]
  sets = {'chan': f.reshape(n, -1, f.shape[-1])}
  if not is_bn:
    sets['patch'] = np.stack(_np_patches(f), -1)        # [N, 16C, patches]
  return sets


@pytest.mark.parametrize('form', ['code', 'paper'])
def test_edc_loss_with_smoothing_and_flatness_matches_numpy(form):
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('edc', edc_form=form, flatness=True, **NOAUG)
  targets = rc.prepare_targets('edc', (model, variables), x, y, K, cfg)
  _, real = _taps(model, variables, x, ('conv', 'batchnorm'), ())
  keys = sorted(real)
  # Teacher statistics by hand.
  teach = []
  for key in keys:
    is_bn = 'norm' in key
    layer = {}
    for name, v in _np_sets(real[key], is_bn).items():
      if is_bn:
        run = variables['batch_stats'][key.split(':')[1].split('/')[0]]['norm']
        glob = {'mean': np.asarray(run['mean']), 'var': np.asarray(run['var'])}
      else:
        glob = {'mean': v.reshape(-1, v.shape[-1]).mean(0),
                'var': v.reshape(-1, v.shape[-1]).var(0)}
      cm = np.stack([v[y == c].reshape(-1, v.shape[-1]).mean(0) for c in range(K)])
      if form == 'code':
        cv = np.stack([v[y == c].var(1).mean(0) for c in range(K)])
      else:
        cv = np.stack([v[y == c].reshape(-1, v.shape[-1]).var(0) for c in range(K)])
      layer[name] = {'global': glob, 'class': {'mean': cm, 'var': cv}}
      for part in ('global', 'class'):
        for s in ('mean', 'var'):
          np.testing.assert_allclose(targets[keys.index(key)][name][part][s],
                                     layer[name][part][s], rtol=1e-4, atol=1e-5)
    teach.append(layer)
  # A smoothing history (count 2) and EMA images.
  rng = np.random.default_rng(5)
  state0 = rc.METHODS['edc'].init_state(cfg, targets)
  ema = jax.tree_util.tree_map(lambda a: a + jnp.asarray(rng.normal(0, 0.1, a.shape),
                                                         jnp.float32), state0['ema'])
  tstate = {'ema': ema, 'count': jnp.int32(2)}
  images, labels = jnp.asarray(x[6:9]), jnp.arange(K)
  ema_images = jnp.asarray(x[9:12])
  loss, ((new_t, new_shared), metrics) = rc.METHODS['edc'].loss(
      cfg, images, labels, (model, variables), targets,
      (tstate, {'ema_images': ema_images}), _info(), jax.random.key(0))
  logits, syn = _taps(model, variables, x[6:9], ('conv', 'batchnorm'), ())
  m, match = 0.8, 0.0
  for i, key in enumerate(keys):
    layer = 0.0
    for name, v in _np_sets(syn[key], 'norm' in key).items():
      e = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), ema[i][name])
      t = teach[i][name]
      rows = v.reshape(-1, v.shape[-1])
      sm = {s: m * e['global'][s] + (1 - m) * cur
            for s, cur in (('mean', rows.mean(0)), ('var', rows.var(0)))}
      glob = sum(_norm(t['global'][s] - sm[s]) for s in ('mean', 'var'))
      if form == 'code':
        cat = sum(_norm(t['class'][s].mean(0) - sm[s]) for s in ('mean', 'var'))
      else:   # one image per class: its own positions
        cs = {s: m * e['class'][s] + (1 - m) * np.stack(
            [getattr(v[c], s)(0) for c in range(K)]) for s in ('mean', 'var')}
        cat = sum(np.mean([_norm(t['class'][s][c] - cs[s][c]) for c in range(K)])
                  for s in ('mean', 'var'))
      layer += 0.5 * glob + 0.5 * cat
      np.testing.assert_allclose(new_t['ema'][i][name]['global']['mean'], sm['mean'],
                                 rtol=1e-4, atol=1e-5)
    match += (10.0 if i == 0 else 1.0) * layer
  ema_logits = np.asarray(models.apply_model(model, variables, ema_images)[0], np.float64)
  log_p = logits / 4 - np.log(np.exp(logits / 4).sum(1, keepdims=True))
  log_q = ema_logits / 4 - np.log(np.exp(ema_logits / 4).sum(1, keepdims=True))
  flat = np.mean(np.sum(np.exp(log_p) * (log_p - log_q), 1))
  np.testing.assert_allclose(metrics['match'], match, rtol=1e-4)
  np.testing.assert_allclose(metrics['flat'], flat, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(loss, _np_ce(logits, np.arange(K)) + 0.01 * match + flat,
                             rtol=1e-4)
  assert int(new_t['count']) == 3
  np.testing.assert_allclose(new_shared['ema_images'],
                             0.99 * x[9:12] + 0.01 * x[6:9], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------
# The sequential loop
# ---------------------------------------------------------------------------------
def test_synthesize_gives_ipc_images_per_class_within_bounds():
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('sre2l', ipc=2, iterations=3, norm_mean=(0.5,),
                          norm_std=(0.25,))
  targets = rc.prepare_targets('sre2l', (model, variables), x, y, K, cfg)
  lines = []
  images, labels = rc.synthesize(jax.random.key(0), (model, variables), targets, cfg, K,
                                 SHAPE, log=lines.append)
  assert images.shape == (2 * K,) + SHAPE
  np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2])
  np.testing.assert_array_equal(np.bincount(np.asarray(labels)), [2] * K)
  assert float(images.min()) >= -2.0 - 1e-6 and float(images.max()) <= 2.0 + 1e-6
  assert len(lines) == 2 and 'ETA' in lines[-1]


def test_sre2l_loss_decreases_over_iterations():
  model, variables = _teacher()
  x, y = _data()
  # The authors' lr 0.25; pixel bounds of data normalised with mean 0.5, std 0.25.
  cfg = rc.default_config('sre2l', ipc=1, iterations=8, norm_mean=(0.5,),
                          norm_std=(0.25,), **NOAUG)
  targets = rc.prepare_targets('sre2l', (model, variables), x, y, K, cfg)
  *_, info = rc.synthesize(jax.random.key(0), (model, variables), targets, cfg, K, SHAPE,
                           log=lambda s: None, return_info=True)
  loss = info['loss'][0]
  assert loss[-1] < 0.9 * loss[0], loss


def test_beta_curriculum_cosine_and_fixed():
  ipc = 4
  cos = rc.batch_betas(rc.default_config('cfm', ipc=ipc, cfm_beta=0.2))
  ref = [0.2 * (1 + math.cos(math.pi * k / ipc)) / 2 for k in range(ipc)]
  np.testing.assert_allclose(cos, ref, rtol=1e-6)
  fixed = rc.batch_betas(rc.default_config('cfm', ipc=ipc, curriculum='fixed'))
  np.testing.assert_allclose(fixed, [0.1] * ipc, rtol=1e-6)


def test_cfm_emu_state_after_two_batches_is_the_mean_and_real_init_order():
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('cfm', ipc=2, iterations=1, lr=1e-6, clip=False, **NOAUG)
  targets = rc.prepare_targets('cfm', (model, variables), x, y, K, cfg)
  real = np.concatenate([x[y == c][:2] for c in range(K)])     # class-major
  images, labels, info = rc.synthesize(jax.random.key(0), (model, variables), targets,
                                       cfg, K, SHAPE, real_init=real,
                                       log=lambda s: None, return_info=True)
  np.testing.assert_allclose(info['beta'], [0.1, 0.05], rtol=1e-6)
  batches = [real.reshape(K, 2, *SHAPE)[:, k] for k in range(2)]
  np.testing.assert_allclose(images, np.concatenate(batches), atol=1e-4)
  # With one iteration, each batch's stored statistics are those of its real images.
  stats = []
  for b in batches:
    _, taps = _taps(model, variables, b, ('conv',), ('shortcut',))
    stats.append([(np.cov(taps[k].reshape(-1, taps[k].shape[-1]).T, bias=True),
                   taps[k].reshape(-1, taps[k].shape[-1]).mean(0)) for k in sorted(taps)])
  running = info['state']['teachers'][0]['running']
  for layer, (a, b) in enumerate(zip(*stats)):
    np.testing.assert_allclose(running[layer][0], (a[0] + b[0]) / 2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(running[layer][1], (a[1] + b[1]) / 2, rtol=1e-4, atol=1e-5)


def test_edc_round_robin_over_two_architectures():
  teachers = [_teacher(0, width=8), _teacher(1, width=4)]
  x, y = _data()
  # The loss terms are checked above; the lightest EDC variant keeps the compile short.
  cfg = rc.default_config('edc', ipc=2, iterations=3, edc_form='code', patch_stats=False,
                          **NOAUG)
  targets = rc.prepare_targets('edc', teachers, x, y, K, cfg)
  images, labels, info = rc.synthesize(jax.random.key(0), teachers, targets, cfg, K,
                                       SHAPE, data=(x, y), log=lambda s: None,
                                       return_info=True)
  assert images.shape == (2 * K,) + SHAPE
  # Global step s = 3k + t uses teacher s mod 2: steps 0..5 -> 3 each.
  counts = [int(t['count']) for t in info['state']['teachers']]
  assert counts == [3, 3]
  assert np.isfinite(info['loss']).all()


def test_batch_fn_compiles_once_across_batches():
  model, variables = _teacher()
  x, y = _data()
  cfg = rc.default_config('cfm', ipc=3, iterations=2)     # with RRC, flip and roll
  targets = rc.prepare_targets('cfm', (model, variables), x, y, K, cfg)
  run = rc.make_batch_fn(cfg, [model])
  state = {'teachers': (rc.METHODS['cfm'].init_state(cfg, targets),),
           'shared': {'ema_images': jnp.zeros((K,) + SHAPE)}}
  for k in range(3):
    _, state, metrics = run(jnp.asarray(x[3 * k:3 * k + 3]), jnp.arange(K), [variables],
                            [targets], state, jax.random.key(k), jnp.int32(k),
                            jnp.float32(0.1 / (k + 1)))
    assert metrics['loss'].shape == (2,) and np.isfinite(metrics['loss']).all()
  assert run._cache_size() == 1
