"""Every config's ``runlocal`` runs end to end (on small stand-in data for MNIST/CIFAR),
and every config file stays a short page that links its results.

The quickstart runs through the real launcher command (it needs no data file); the
MNIST and CIFAR-10 configs get a tiny npz of their image shape through
``--config.data``, the same override a user types to run them offline.
"""

import ast
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from jaxdd import distill
from conftest import REPO, load_config, write_npz

CONFIGS = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(REPO, 'configs', '*.py')))
SHAPES = {'mnist': (28, 28, 1), 'cifar10': (32, 32, 3)}


def test_quickstart_runlocal_through_the_launcher(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxdd.launch', '--config=configs/quickstart.py:runlocal',
       f'--workdir={tmp_path}'], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / 'results.json').read_text())
  assert res['ipc'] == 10 and res['steps'] > 0
  assert json.loads((tmp_path / 'config.json').read_text())['data'] == 'digits'
  assert 'ETA' in proc.stdout and 'random subset' in proc.stdout


# The PoDD configs run end to end in test_podd_configs.py (poster outputs, CUB on
# tensorflow-datasets' mock data), the squeeze-recover-relabel ones in test_sre.py.
SRE_PREFIXES = ('sre2l_', 'cfm_', 'edc_')


@pytest.mark.parametrize('name', [c for c in CONFIGS
                                  if c != 'quickstart' and not c.startswith('podd_')
                                  and not c.startswith(SRE_PREFIXES)])
def test_config_runlocal_end_to_end(name, tmp_path):
  config = load_config(name, 'runlocal')
  assert isinstance(config.ipc, int) and config.data
  if config.data != 'digits':   # digits configs run on the bundled data itself
    shape = next((s for k, s in SHAPES.items() if k in name), None)
    assert shape is not None, f'add the image shape of {name} to SHAPES'
    # Three classes: the per-class Python loops of DC/DSA/DM compile once per class
    # (the step's compile time falls ~3x); the config's own wiring is unchanged.
    config.data = 'npz:' + write_npz(tmp_path / 'd.npz', shape=shape, classes=3,
                                     train_per_class=max(16, config.ipc))
  config.objective.batch_real = min(config.objective.batch_real, 16)
  res = distill.train_and_evaluate(config, str(tmp_path / 'w'))
  assert 0.0 <= res['accuracy_mean'] <= 1.0
  assert (tmp_path / 'w' / 'distilled.png').exists()


MAX_CONFIG_LINES = 40   # a command, a result, the paper's number and a recipe call


@pytest.mark.parametrize('name', CONFIGS)
def test_config_is_short_and_links_its_results_page(name):
  with open(os.path.join(REPO, 'configs', f'{name}.py')) as f:
    text = f.read()
  assert len(text.splitlines()) <= MAX_CONFIG_LINES
  doc = ast.get_docstring(ast.parse(text))
  assert f'python -m jaxdd.launch --config=configs/{name}.py' in doc
  pages = re.findall(r'docs/results/[\w-]+\.md', doc)
  assert pages, 'the docstring names no docs/results page'
  for page in pages:
    path = os.path.join(REPO, page)
    assert os.path.isfile(path), f'{page} does not exist'
  sections = [open(os.path.join(REPO, p)).read() for p in pages]
  assert any(f'## configs/{name}.py\n' in s for s in sections), (
      f'no section for configs/{name}.py in {", ".join(pages)}')
