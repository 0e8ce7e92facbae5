"""Squeeze -> recover -> relabel (jaxdd/sre/pipeline.py): configs end to end, resume, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxdd import data as data_lib
from jaxdd.recipes import sre as sre_recipes
from jaxdd.sre import pipeline as sre
from jaxdd.pretrain import teachers as teachers_lib
from jaxdd.errors import ConfigError
from conftest import REPO, load_config, write_npz

SRE_CONFIGS = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(REPO, 'configs'))
                     if n.startswith(('sre2l_', 'cfm_', 'edc_')) and n.endswith('.py'))
SHAPES = {'cifar100': ((32, 32, 3), 100), 'cifar10': ((32, 32, 3), 10),
          'mnist': ((28, 28, 1), 10), 'digits': (None, 10)}


def _runlocal(name, tmp_path):
  config = load_config(name, 'runlocal')
  assert config.pipeline == 'sre'
  (shape, classes), = [v for k, v in SHAPES.items() if k in name][:1]
  if shape is not None:   # stand-in data of the config's image shape
    config.data = 'npz:' + write_npz(tmp_path / 'd.npz', shape=shape, classes=classes,
                                     train_per_class=4, test_per_class=2)
  config.teachers.cache_dir = str(tmp_path / 'teachers')
  return config


def test_the_configs_are_all_here():
  assert {'sre2l_cifar10', 'cfm_cifar10', 'cfm_cifar100', 'edc_cifar10', 'sre2l_digits',
          'cfm_digits', 'edc_digits', 'sre2l_mnist', 'cfm_mnist', 'edc_mnist'
          } <= set(SRE_CONFIGS)


# End to end: one config per method on digits, and EDC's several CIFAR teachers; the
# other configs share these builders (jaxdd/sre/pipeline.py) and are checked field by field below.
END_TO_END = ('sre2l_digits', 'cfm_digits', 'edc_digits', 'edc_cifar10')


@pytest.mark.parametrize('name', [n for n in SRE_CONFIGS if n not in END_TO_END])
def test_every_config_passes_the_checks_of_all_three_stages(name, tmp_path):
  from jaxdd import models
  config = _runlocal(name, tmp_path)
  ds = data_lib.load_from_config(config)
  tcfgs, rcfg, lcfg = sre.check_config(config, ds)
  assert rcfg.method == config.recover.method and rcfg.ipc == config.ipc
  assert lcfg.epochs == config.relabel.epochs
  for t in tcfgs:   # every teacher and the student can be built for this data
    teachers_lib.make_teacher_model(t, ds.num_classes, ds.x_train.shape[1:])
  models.get_model(config.relabel.student, ds.num_classes, image_shape=ds.x_train.shape[1:])
  full = load_config(name)   # the full-size config passes the same checks
  full.data = config.data
  sre.check_config(full, ds)


@pytest.mark.parametrize('name', ['sre2l_cifar10', 'cfm_cifar10', 'edc_cifar10'])
def test_the_cpu_sized_cifar10_variant_flips_and_passes_the_checks(name, tmp_path):
  cpu = load_config(name, 'ipc=10,cpu')
  cpu.data = _runlocal(name, tmp_path).data   # stand-in 32x32x3 data
  ds = data_lib.load_from_config(cpu)
  tcfgs, rcfg, lcfg = sre.check_config(cpu, ds)
  # CIFAR-10 is flipped at every stage (digits and MNIST never are); the CPU budget.
  assert all(t.flip for t in tcfgs) and rcfg.flip and lcfg.flip
  assert [t.epochs for t in tcfgs] == [10] * (3 if name.startswith('edc') else 1)
  # EDC keeps its authors' 75 recover iterations; the others are capped at 300 of 1000.
  assert rcfg.iterations == (75 if name.startswith('edc') else 300)
  assert lcfg.epochs == 300
  mnist = load_config(name.replace('cifar10', 'mnist'))
  assert not any(t['flip'] for t in mnist.teachers.sets) and not mnist.relabel.flip


def test_small_config_names_the_accepted_data():
  with pytest.raises(ConfigError, match='tfds:cifar10'):
    sre_recipes.small_config('cfm', 'tfds:svhn', 10, runlocal=True)


@pytest.mark.parametrize('name', END_TO_END)
def test_config_runlocal_end_to_end(name, tmp_path):
  config = _runlocal(name, tmp_path)
  res = sre.run(config, str(tmp_path / 'w'))
  with np.load(tmp_path / 'w' / 'distilled.npz') as f:
    labels = f['labels']
    k = int(labels.max()) + 1
    # Exactly ipc images per class, ordered by batch then class.
    np.testing.assert_array_equal(labels, np.tile(np.arange(k), config.ipc))
    assert f['images'].shape[0] == k * config.ipc
  assert (tmp_path / 'w' / 'distilled.png').exists()
  saved = json.loads((tmp_path / 'w' / 'results.json').read_text())
  for key in ('accuracy_mean', 'random_baseline_mean', 'teacher_accuracies', 'method'):
    assert key in saved, key
  assert 0.0 <= res['accuracy_mean'] <= 1.0
  assert len(res['teacher_accuracies']) == len(config.teachers.sets)


def test_a_rerun_reuses_the_teachers_and_the_distilled_set(tmp_path, monkeypatch, capsys):
  config = _runlocal('sre2l_digits', tmp_path)
  sre.run(config, str(tmp_path / 'w'), evaluate=False)
  with np.load(tmp_path / 'w' / 'distilled.npz') as f:
    first = f['images']

  def no_training(*a, **k):
    raise AssertionError('trained again')

  from jaxdd.sre import recover
  from jaxdd.pretrain import teachers
  monkeypatch.setattr(teachers, 'train_teachers', no_training)
  monkeypatch.setattr(recover, 'synthesize', no_training)
  capsys.readouterr()
  sre.run(config, str(tmp_path / 'w'), evaluate=False)
  assert 'reusing' in capsys.readouterr().out
  with np.load(tmp_path / 'w' / 'distilled.npz') as f:
    np.testing.assert_array_equal(f['images'], first)


@pytest.mark.parametrize('field, value, match', [
    ('recover.method', 'dm', 'recover.method must be one of sre2l, cfm, edc'),
    ('recover.curriculum', 'linear', 'curriculum'),
    ('relabel.loss', 'mse', 'loss'),
    ('relabel.seeds', 0, 'relabel.seeds must be a positive integer'),
])
def test_bad_fields_are_refused_before_training(tmp_path, monkeypatch, field, value, match):
  config = _runlocal('cfm_digits', tmp_path)
  section, leaf = field.split('.')
  config[section][leaf] = value
  from jaxdd.pretrain import teachers
  monkeypatch.setattr(teachers, 'train_teachers', lambda *a, **k: 1 / 0)
  with pytest.raises(ConfigError, match=match):
    sre.run(config, str(tmp_path / 'w'))


def test_unknown_fields_are_named(tmp_path):
  config = _runlocal('cfm_digits', tmp_path)
  config.recover.unlock()
  config.recover.itterations = 3
  with pytest.raises(ConfigError, match='recover has unknown field.*itterations'):
    sre.run(config, str(tmp_path / 'w'))


def test_the_launcher_runs_the_pipeline_and_refuses_unknown_pipelines(tmp_path):
  cmd = [sys.executable, '-m', 'jaxdd.launch', '--config=configs/sre2l_digits.py:runlocal',
         f'--config.teachers.cache_dir={tmp_path / "t"}', '--evaluate=false']
  ok = subprocess.run(cmd + [f'--workdir={tmp_path / "w"}'], cwd=REPO,
                      capture_output=True, text=True, timeout=600)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert (tmp_path / 'w' / 'distilled.npz').exists()
  bad = subprocess.run(cmd + [f'--workdir={tmp_path / "w2"}', '--config.pipeline=srex'],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines() == [
      "error: pipeline must be one of 'distill', 'sre', got 'srex'"]
