"""The generic loop: compile once, resume, 8 devices = 1 device, errors, outputs."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import data as data_lib
from jaxdd import distill, registry
from jaxdd.config_utils import set_fields
from jaxdd.errors import ConfigError, DataError
from jaxdd.interfaces import Objective
from conftest import REPO, interrupt_and_resume, load_config


def _small(config, data, **overrides):
  config.data = data
  config.objective.batch_real = 8
  config.steps = 6
  config.checkpoint_every = 3
  config.log_every = 2
  config.eval.epochs = 3
  config.eval.seeds = 2
  return set_fields(config, overrides)


def test_step_compiles_once(tiny_npz):
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2)
  run = distill.setup(config)
  state = run.state
  for _ in range(3):
    state, metrics = run.step_fn(state, run.base_key, run.x_train, run.index)
  assert int(state['step']) == 3
  assert run.step_fn._cache_size() == 1
  assert np.isfinite(float(metrics['loss']))


def test_outputs_of_a_run(tiny_npz, tmp_path):
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2)
  res = distill.train_and_evaluate(config, str(tmp_path / 'w'))
  w = tmp_path / 'w'
  for f in ('metrics.jsonl', 'distilled.npz', 'distilled.png', 'results.json'):
    assert (w / f).exists(), f
  saved = json.loads((w / 'results.json').read_text())
  for k in ('accuracy_mean', 'accuracy_std', 'random_baseline_mean', 'random_baseline_std',
            'ipc', 'budget_floats', 'steps', 'seconds'):
    assert k in saved, k
  assert saved['budget_floats'] == 3 * 2 * 8 * 8 * 1 == res['budget_floats']
  lines = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  assert [l['step'] for l in lines] == list(range(1, 7))
  with np.load(w / 'distilled.npz') as f:
    assert f['images'].shape == (6, 8, 8, 1) and f['labels'].shape == (6, 3)
    assert 'param/syn/images' in f.files
    meta = json.loads(str(f['meta_json']))
  assert meta['data'] == config.data and meta['ipc'] == 2


def test_resume_after_interruption_gives_identical_images(tiny_npz, tmp_path, monkeypatch):
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2, steps=8)
  distill.train_and_evaluate(config, str(tmp_path / 'a'), evaluate=False)
  # Stopped at step 5: after the checkpoint at step 3, before the one at 6.
  interrupt_and_resume(monkeypatch, config, str(tmp_path / 'b'))

  with np.load(tmp_path / 'a' / 'distilled.npz') as a, \
       np.load(tmp_path / 'b' / 'distilled.npz') as b:
    np.testing.assert_array_equal(a['images'], b['images'])
  steps = [json.loads(l)['step'] for l in
           (tmp_path / 'b' / 'metrics.jsonl').read_text().splitlines()]
  assert steps == list(range(1, 9))     # the lines after step 3 were redone, not doubled


@pytest.mark.parametrize('overrides, error, message', [
    (dict(ipc=0), ConfigError, 'ipc must be a positive integer'),
    (dict(ipc=-3), ConfigError, 'ipc must be a positive integer'),
    (dict(ipc=21), DataError, 'ipc'),                      # 20 images per class
    ({'objective.name': 'dmm'}, ConfigError, 'objective.name'),
    ({'model.name': 'convnet7'}, ConfigError, 'model.name'),
    ({'eval.model': 'vgg99'}, ConfigError, 'eval.model'),
    ({'parameterization.name': 'jpeg'}, ConfigError, 'parameterization.name'),
    ({'optim.images.name': 'lbfgs'}, ConfigError, 'optim.images.name'),
    ({'data': 'imagenet'}, ConfigError, 'data'),
    ({'data': 'npz:/nonexistent/file.npz'}, DataError, '/nonexistent/file.npz'),
    ({'steps': 0}, ConfigError, 'steps'),
])
def test_config_errors_name_the_field_before_compiling(tiny_npz, monkeypatch, overrides,
                                                       error, message):
  overrides = {'ipc': 2, **overrides}
  config = _small(load_config('quickstart', 'runlocal'), overrides.pop('data', tiny_npz),
                  **overrides)
  monkeypatch.setattr(jax, 'jit', lambda *a, **k: pytest.fail('compiled before checking'))
  with pytest.raises(error, match=message):
    distill.setup(config)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    tiny_npz, tmp_path, monkeypatch):

  def make_nan_at_5(config):
    def loss(syn, real, key, ctx, step, obj_state):
      value = jnp.sum(syn.images ** 2) * 1e-3
      value = jnp.where(step >= 4, jnp.nan, value)
      return value, {'toy': value}
    return Objective(lambda ds, config: {}, loss)

  monkeypatch.setitem(registry.OBJECTIVES, 'nan_at_5', make_nan_at_5)
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2,
                  checkpoint_every=2, steps=10, **{'objective.name': 'nan_at_5'})
  with pytest.raises(distill.NonFiniteLossError, match='at step 5.*checkpoint is step 4'):
    distill.train_and_evaluate(config, str(tmp_path / 'w'))
  assert sorted(os.listdir(tmp_path / 'w' / 'checkpoints')) == ['2', '4']


def test_launcher_error_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxdd.launch', '--config=configs/quickstart.py:runlocal',
       '--config.ipc=0', f'--workdir={tmp_path}'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert errors == ['error: ipc must be a positive integer, got 0'], proc.stderr
  assert 'Traceback' not in proc.stderr


def test_skip_update_leaves_params_and_optimizer_state_unchanged(tiny_npz, monkeypatch):
  # DATM's skip rule: an objective vetoes the step with aux['skip_update'] = 1.
  def make_skip_odd(config):
    def loss(syn, real, key, ctx, step, obj_state):
      value = jnp.sum((syn.images - 1.0) ** 2)
      return value, {'skip_update': (step % 2 == 1).astype(jnp.float32)}
    return Objective(lambda ds, config: {}, loss)

  monkeypatch.setitem(registry.OBJECTIVES, 'skip_odd', make_skip_odd)
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2,
                  **{'objective.name': 'skip_odd'})
  run = distill.setup(config)
  state = run.state
  history = []
  for _ in range(4):
    before = jax.device_get(state)
    state, _ = run.step_fn(state, run.base_key, run.x_train, run.index)
    history.append((before, jax.device_get(state)))
  for step, (before, after) in enumerate(history):
    same = jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: np.array_equal(a, b), before['params'], after['params']))
    same_opt = jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: np.array_equal(a, b), before['opt_state'], after['opt_state']))
    assert same == (step % 2 == 1) and same_opt == (step % 2 == 1), step
    assert int(after['step']) == step + 1


def test_project_is_applied_after_every_update(tiny_npz, monkeypatch):
  def make_clamped_pixels(config, num_classes, image_shape, ds=None):
    base = registry.PARAMETERIZATIONS['pixels'](config, num_classes, image_shape, ds)
    clamp = lambda p: {**p, 'images': jnp.minimum(p['images'], 0.25)}
    return base._replace(project=clamp)

  def make_push_up(config):   # gradient descent pushes every pixel up
    return Objective(lambda ds, config: {},
                     lambda syn, real, key, ctx, step, s: (-jnp.sum(syn.images), {}))

  monkeypatch.setitem(registry.PARAMETERIZATIONS, 'clamped', make_clamped_pixels)
  monkeypatch.setitem(registry.OBJECTIVES, 'push_up', make_push_up)
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2,
                  **{'objective.name': 'push_up', 'parameterization.name': 'clamped'})
  run = distill.setup(config)
  state, _ = run.step_fn(run.state, run.base_key, run.x_train, run.index)
  images = np.asarray(state['params']['syn']['images'])
  assert images.max() <= 0.25 and np.isclose(images.max(), 0.25)


def _class_medians(ds):
  brightness = ds.x_train.mean(axis=(1, 2, 3))
  return np.array([np.median(brightness[ds.y_train == c]) for c in range(ds.num_classes)])


def test_init_filter_selects_accepted_images_and_their_label_init(tiny_npz, monkeypatch):
  # DATM: initialise only from images the experts get right, labels = their logits.
  def init_filter(ctx, images, labels):
    brightness = images.mean(axis=(1, 2, 3))
    keep = brightness > jnp.asarray(ctx['threshold'])[labels]
    label_init = jnp.stack([brightness, -brightness, labels.astype(jnp.float32)], -1)
    return keep, label_init

  def make_filtered(config):
    def prepare(ds, config):
      return {'threshold': _class_medians(ds)}
    return Objective(prepare, lambda syn, real, key, ctx, step, s: (jnp.sum(syn.labels), {}),
                     init_filter=init_filter)

  monkeypatch.setitem(registry.OBJECTIVES, 'filtered', make_filtered)
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=3,
                  **{'objective.name': 'filtered', 'parameterization.learn_labels': True})
  run = distill.setup(config)
  images = np.asarray(run.state['params']['syn']['images'])
  labels = np.asarray(run.state['params']['syn']['labels'])
  brightness = images.mean(axis=(1, 2, 3))
  assert (brightness > _class_medians(run.ds)[np.repeat(np.arange(3), 3)]).all()
  np.testing.assert_allclose(labels[:, 0], brightness, rtol=1e-5)
  np.testing.assert_array_equal(labels[:, 2], np.repeat(np.arange(3), 3))
  # Every synthetic image is a real training image of its class.
  for i, img in enumerate(images):
    match = np.flatnonzero(np.all(np.isclose(run.ds.x_train, img), axis=(1, 2, 3)))
    assert len(match) == 1 and run.ds.y_train[match[0]] == i // 3


def test_init_filter_refuses_a_class_with_too_few_accepted_images(tiny_npz, monkeypatch):
  def make_none_ok(config):
    return Objective(lambda ds, config: {}, lambda *a: (0.0, {}),
                     init_filter=lambda ctx, x, y: (y != 1, jax.nn.one_hot(y, 3)))
  monkeypatch.setitem(registry.OBJECTIVES, 'none_ok', make_none_ok)
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2,
                  **{'objective.name': 'none_ok'})
  with pytest.raises(DataError, match='class 1 has 0 images the objective accepts'):
    distill.setup(config)


def test_slow_steps_print_progress_whatever_log_every_says(tiny_npz, tmp_path, monkeypatch,
                                                           capsys):
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2, log_every=1000)
  monkeypatch.setattr(distill, 'PROGRESS_SECONDS', 0.0)   # every step counts as slow
  distill.train_and_evaluate(config, str(tmp_path / 'w'), evaluate=False)
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith('step ')]
  # The first step reports compilation; every later one prints its rate and ETA.
  assert [l.split()[1] for l in lines] == [f'{s}/6' for s in range(1, 7)]
  assert all('ETA' in l for l in lines[1:])
  monkeypatch.setattr(distill, 'PROGRESS_SECONDS', 1e9)   # fast steps: log_every rules
  distill.train_and_evaluate(config, str(tmp_path / 'w2'), evaluate=False)
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith('step ')]
  assert [l.split()[1] for l in lines] == ['1/6', '6/6']


def test_model_selection_keeps_the_best_scored_set_and_survives_resume(
    tiny_npz, tmp_path, monkeypatch):
  def small(steps, **overrides):
    return _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2, steps=steps,
                  **overrides)

  def images(workdir):
    with np.load(tmp_path / workdir / 'distilled.npz') as f:
      return f['images']

  # A score whose maximum is the set of step 4, in the middle of the run (2, 4, 6):
  # minus the distance of the images' mean from the mean at step 4 of a plain run.
  distill.train_and_evaluate(small(4), str(tmp_path / 'plain4'), evaluate=False)
  mean4 = float(images('plain4').mean())

  def make_selector(config, ds, param):
    del config, ds
    return lambda params: -abs(float(param.decode(params['syn']).images.mean()) - mean4)

  monkeypatch.setattr(distill, 'make_model_selection_score', make_selector)
  config = small(6, **{'select.every': 2})
  res = distill.train_and_evaluate(config, str(tmp_path / 'a'), evaluate=False)
  lines = [json.loads(l) for l in (tmp_path / 'a' / 'metrics.jsonl').read_text().splitlines()]
  scored = {l['step']: l['selection_accuracy'] for l in lines if 'selection_accuracy' in l}
  assert sorted(scored) == [2, 4, 6] and max(scored, key=scored.get) == 4
  assert scored[4] > max(scored[2], scored[6])
  assert res['selected_step'] == 4 and res['selection_accuracy'] == pytest.approx(scored[4])
  np.testing.assert_array_equal(images('a'), images('plain4'))

  # Interrupted after the checkpoint at step 3 and resumed: the same choice and set.
  resumed = interrupt_and_resume(monkeypatch, config, str(tmp_path / 'b'))
  assert resumed['selected_step'] == 4
  np.testing.assert_array_equal(images('b'), images('plain4'))


def test_the_selection_score_is_the_protocol_accuracy_on_training_images(tiny_npz,
                                                                          tmp_path):
  config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2, steps=2,
                  **{'select.every': 2, 'select.samples': 100, 'eval.epochs': 20})
  res = distill.train_and_evaluate(config, str(tmp_path / 'w'), evaluate=False)
  with np.load(tmp_path / 'w' / 'distilled.npz') as f:
    images, labels = f['images'], f['labels']
  ds = data_lib.load_from_config(config)   # 60 training images, all of them < 100 samples
  model = distill.models_lib.get_model(config.eval.model, ds.num_classes,
                                       image_shape=ds.x_train.shape[1:])
  again = distill.eval_lib.evaluate_synset(
      jax.random.key(config.seed + 2), model, images, labels, ds.x_train, ds.y_train,
      num_seeds=1, cfg=distill.eval_config(config), num_classes=ds.num_classes)
  assert res['selected_step'] == 2
  assert res['selection_accuracy'] == pytest.approx(again['accuracy_mean'])
  assert 0.4 < again['accuracy_mean'] <= 1   # a trained network, above chance (1/3)


def test_select_fields_are_checked_before_compiling(tiny_npz):
  for field, bad in (('every', -1), ('seeds', 0), ('samples', 0)):
    config = _small(load_config('quickstart', 'runlocal'), tiny_npz, ipc=2,
                    **{f'select.{field}': bad})
    with pytest.raises(ConfigError, match=f'select.{field}'):
      distill.check_config(config)
