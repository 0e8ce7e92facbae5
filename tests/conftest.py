"""Shared test helpers: tiny on-disk data sets and config loading.

The session shares one persistent XLA compilation cache (a fresh directory per test
session, inherited by the xdist workers and the launcher subprocesses through the
environment): many config tests compile the same evaluation programs, and a hit loads
in 0.4-4 s what takes 7-20 s to compile on 2 CPU cores (measured on dm_mnist runlocal).
Fresh per session, so a local run is timed as CI's clean one.
"""

import os
import tempfile
import types

if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:   # the controller; workers inherit it
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jaxdd_test_xla_')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# Under xdist every worker gets one XLA thread: the workers already fill the cores, and
# their thread pools contending for them cost ~11 % of the wall time (measured on the
# MNIST config tests with -n 2 on 2 cores). A plain ``pytest`` keeps XLA's threads.
if os.environ.get('PYTEST_XDIST_WORKER'):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen'
                             '=false').strip()

import numpy as np
import pytest

from jaxdd.config_utils import load_config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None):
  """``get_config(arg)`` of ``configs/NAME.py``, as the launcher would call it."""
  return load_config_file(os.path.join(REPO, 'configs', f'{name}.py'), arg)


def write_npz(path, shape=(8, 8, 1), classes=3, train_per_class=20, test_per_class=5,
              seed=0) -> str:
  """A small learnable data set in the layout of ../shared/data (uint8 images)."""
  rng = np.random.default_rng(seed)
  protos = rng.uniform(40, 215, size=(classes,) + shape)

  def split(n):
    x = np.concatenate([p + rng.normal(0, 25, size=(n,) + shape) for p in protos])
    y = np.repeat(np.arange(classes), n)
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

  x_train, y_train = split(train_per_class)
  x_test, y_test = split(test_per_class)
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
           classes=np.array([f'c{i}' for i in range(classes)]))
  return str(path)


@pytest.fixture
def tiny_npz(tmp_path):
  return 'npz:' + write_npz(tmp_path / 'tiny.npz')


def interrupt_and_resume(monkeypatch, config, workdir: str, fail_at_call: int = 5):
  """Runs ``config`` in ``workdir`` with a KeyboardInterrupt in place of its
  ``fail_at_call``-th step (the steps before it ran, their checkpoints are kept), then
  runs it again to the end, resuming; returns the second run's results."""
  import jaxdd.distill as distill   # pylint: disable=g-import-not-at-top (jax stays lazy)
  real_setup = distill.setup

  def interrupted_setup(cfg, mesh=None):
    run = real_setup(cfg, mesh)
    calls = {'n': 0}

    class InterruptedStep:
      """The step, interrupted at its fail_at_call-th call; also once compiled ahead
      (the loop calls ``step_fn.lower(...).compile()``)."""

      def __init__(self, fn):
        self.fn = fn

      def lower(self, *args):
        lowered = self.fn.lower(*args)
        return types.SimpleNamespace(compile=lambda: InterruptedStep(lowered.compile()))

      def __call__(self, *args):
        calls['n'] += 1
        if calls['n'] == fail_at_call:
          raise KeyboardInterrupt
        return self.fn(*args)
    return run._replace(step_fn=InterruptedStep(run.step_fn))

  monkeypatch.setattr(distill, 'setup', interrupted_setup)
  with pytest.raises(KeyboardInterrupt):
    distill.train_and_evaluate(config, workdir, evaluate=False)
  monkeypatch.setattr(distill, 'setup', real_setup)
  return distill.train_and_evaluate(config, workdir, evaluate=False)


def prototype_data(k, shape, n_per_class=4, seed=0):
  """``k`` classes of Gaussian noise (std 0.5) around random prototypes: float32 x, int y."""
  rng = np.random.default_rng(seed)
  protos = rng.normal(size=(k,) + tuple(shape))
  x = np.concatenate([p + 0.5 * rng.normal(size=(n_per_class,) + tuple(shape))
                      for p in protos])
  y = np.repeat(np.arange(k), n_per_class).astype(np.int32)
  return x.astype(np.float32), y
