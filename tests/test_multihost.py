"""Multi-process runs (launch/README.md): the launcher's flags, URL workdirs, the caches.

End to end, for DM and MTT: 2 processes x 2 simulated CPU devices, joined over gloo on
127.0.0.1 by ``--coordinator_address/--num_processes/--process_id``, are killed with
SIGKILL after a checkpoint and started again; they resume and end with the distilled
set of 1 process x 4 devices (MTT's two processes train its expert buffer once,
together, and the restart loads it). The rest is in-process and takes milliseconds:
the flags' checks, a ``gs://`` workdir reaching orbax and the writers unchanged, and
the caches' one-writer rule.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from etils import epath

from jaxdd import distill, launch
from jaxdd.errors import ConfigError
from jaxdd.pretrain import store
from jaxdd.sre import pipeline
from conftest import REPO, load_config, write_npz

TIMEOUT = 300   # seconds for one run: a hung gloo join fails instead of hanging

# Tiny runs: the runlocal configs on a 3-class 8x8 data set, a one-block ConvNet
# without DSA (each of them would add compilation, not coverage), a checkpoint every
# step so that a kill lands between two of them. 4 evaluation seeds (DM) and 4 experts
# (MTT): one per device, so each process holds only some of them.
COMMON = ['--config.ipc=2', '--config.model.depth=1', '--config.objective.dsa=False',
          '--config.checkpoint_every=1']
METHODS = {
    'dm': ('configs/dm_mnist.py:runlocal', 8, [
        '--config.objective.batch_real=8', '--config.eval.model=convnetd1',
        '--config.eval.seeds=4', '--config.eval.epochs=1', '--config.eval.dsa=False']),
    'mtt': ('configs/mtt_mnist.py:runlocal', 6, [
        '--config.objective.experts.dsa=False',
        '--config.objective.experts.num_experts=4', '--config.objective.grad_chunks=1',
        '--noevaluate']),
}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  """``devices`` simulated CPU devices (XLA_FLAGS replaced, not extended: XLA stops
  reading at the conftest's ``intra_op_parallelism_threads=1`` under xdist), LLVM at
  -O0 for every run of the comparison: the programs run for milliseconds, compiling
  them is most of a run (-37 % of a one-process MTT run's CPU time)."""
  return dict(os.environ, JAX_PLATFORMS='cpu',
              XLA_FLAGS=f'--xla_force_host_platform_device_count={devices} '
                        '--xla_backend_optimization_level=0')


class Run:
  """One launch: 1 process x 4 devices, or 2 processes x 2 devices over gloo; each
  process's output in ``log_dir/<name><i>.log``."""

  def __init__(self, args, log_dir, name, processes):
    self.logs = [os.path.join(log_dir, f'{name}{i}.log') for i in range(processes)]
    cmd = [sys.executable, '-m', 'jaxdd.launch', *args]
    port = _free_port()
    self.procs = []
    for i, log in enumerate(self.logs):
      flags = ([f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                f'--process_id={i}'] if processes > 1 else [])
      with open(log, 'w') as out:
        self.procs.append(subprocess.Popen(
            cmd + flags, cwd=REPO, env=_env(4 // processes), stdout=out,
            stderr=subprocess.STDOUT))
    self.deadline = time.time() + TIMEOUT

  def output(self, i=0) -> str:
    with open(self.logs[i]) as f:
      return f.read()

  def running(self) -> bool:
    if time.time() > self.deadline:
      raise AssertionError(f'timed out after {TIMEOUT} s:\n' + self.output()[-3000:])
    return any(p.poll() is None for p in self.procs)

  def wait(self):
    while self.running():
      time.sleep(0.05)
    for i, p in enumerate(self.procs):
      assert p.returncode == 0, (f'process {i} exited {p.returncode}:\n'
                                 + self.output(i)[-3000:])

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    for p in self.procs:
      p.wait()


def _steps_saved(workdir) -> list[int]:
  try:
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, 'checkpoints'))
                  if n.isdigit())
  except FileNotFoundError:
    return []


def _images(workdir) -> np.ndarray:
  with np.load(os.path.join(workdir, 'distilled.npz')) as f:
    return f['images']


@pytest.mark.parametrize('method', sorted(METHODS))
def test_two_processes_match_one_and_resume_after_sigkill(method, tmp_path):
  config, steps, extra = METHODS[method]
  data = write_npz(tmp_path / 'tiny.npz')

  def args(name):
    cache = ([f'--config.objective.experts.cache_dir={tmp_path / ("experts_" + name)}']
             if method == 'mtt' else [])   # the buffer of each run in tmp_path
    return [f'--config={config}', f'--config.data=npz:{data}', f'--config.steps={steps}',
            f'--workdir={tmp_path / name}', *COMMON, *extra, *cache]

  runs = []
  try:
    # The reference, one process with four devices, alongside two processes with two
    # devices each, killed once a checkpoint is saved and before the last step.
    runs.append(one := Run(args('one'), tmp_path, 'one', 1))
    runs.append(two := Run(args('two'), tmp_path, 'killed', 2))
    while not any(1 <= s < steps for s in _steps_saved(tmp_path / 'two')):
      assert two.running(), 'the run ended before a checkpoint:\n' + two.output()[-3000:]
      time.sleep(0.02)
    two.kill()
    saved = _steps_saved(tmp_path / 'two')
    assert saved and saved[-1] < steps, saved   # killed half-way
    for i in range(2):
      assert f'process {i} of 2, 4 devices (2 local)' in two.output(i)
    assert 'workdir:' not in two.output(1)       # process 0 reports and writes

    # The same two-process command again: it resumes and ends with the same set.
    runs.append(again := Run(args('two'), tmp_path, 'resumed', 2))
    again.wait()
    one.wait()
    assert f'resumed from checkpoint at step {saved[-1]}' in again.output(0)
    np.testing.assert_allclose(_images(tmp_path / 'two'), _images(tmp_path / 'one'),
                               rtol=1e-5, atol=1e-5)
    if method == 'dm':    # evaluated: seed i scores the same on any device count
      acc = [json.loads((tmp_path / n / 'results.json').read_text())['accuracies']
             for n in ('two', 'one')]
      np.testing.assert_allclose(*acc, atol=1e-6)
    if method == 'mtt':   # the buffer: trained once by both processes, then loaded
      assert 'experts: saved' not in two.output(1)   # process 0 wrote it
      for i in range(2):
        assert 'training 4 experts' in two.output(i)
        assert 'loading cached buffer' in again.output(i)
        assert 'training' not in again.output(i)
      [mine], [ref] = (list((tmp_path / f'experts_{n}').glob('*.npz'))
                       for n in ('two', 'one'))
      with np.load(mine) as a, np.load(ref) as b:
        np.testing.assert_allclose(a['trajectories'], b['trajectories'], rtol=1e-5,
                                   atol=1e-5)
  finally:
    for run in runs:
      run.kill()


# ---- The launcher's flags.


@pytest.mark.parametrize('given, missing', [
    (dict(coordinator_address='127.0.0.1:1234'), '--num_processes, --process_id'),
    (dict(num_processes=2, process_id=0), '--coordinator_address'),
])
def test_a_partial_set_of_process_flags_is_refused(given, missing):
  args = {**dict(coordinator_address=None, num_processes=None, process_id=None), **given}
  with pytest.raises(ConfigError, match=f'missing {missing}$'):
    launch.distributed_args(**args, multihost=False)


def test_process_flags_select_the_initialization():
  assert launch.distributed_args(None, None, None, multihost=False) is None
  assert launch.distributed_args(None, None, None, multihost=True) == {}
  assert launch.distributed_args('h:1', 2, 1, multihost=False) == dict(
      coordinator_address='h:1', num_processes=2, process_id=1)
  for bad, message in ((('h', 2, 0), 'HOST:PORT'), (('h:1', 0, 0), 'positive'),
                       (('h:1', 2, 2), r'0 \.\. 1')):
    with pytest.raises(ConfigError, match=message):
      launch.distributed_args(*bad, multihost=False)


def test_the_launcher_exits_2_with_one_line_on_a_partial_set(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxdd.launch', '--config=configs/quickstart.py:runlocal',
       '--coordinator_address=127.0.0.1:1', '--process_id=0', f'--workdir={tmp_path}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      'error: --coordinator_address, --num_processes and --process_id go together; '
      'missing --num_processes'], proc.stderr


# ---- URL workdirs: never through os.path (gs://b/x would become ./gs:/b/x).


def test_a_gs_workdir_reaches_orbax_unchanged(monkeypatch):
  received = []

  class Recorder:
    def __init__(self, directory, *args, **kwargs):
      received.append(directory)

  monkeypatch.setattr(distill.ocp, 'CheckpointManager', Recorder)
  distill.checkpoint_manager('gs://bucket/run')
  [directory] = received
  assert isinstance(directory, epath.Path)
  assert str(directory) == 'gs://bucket/run/checkpoints'


def test_the_sre_pipeline_writes_to_a_gs_workdir_unchanged(tmp_path, monkeypatch):
  """The pipeline's files go through the writers with the URL intact (the stages are
  stubbed: only the paths are under test; no file system is touched for gs://)."""
  config = load_config('sre2l_digits', 'runlocal')
  config.data = 'npz:' + write_npz(tmp_path / 'tiny.npz')
  config.teachers.cache_dir = str(tmp_path / 'teachers')
  written = {}
  record = lambda name: lambda path, *a, **k: written.setdefault(name, path)
  for name in ('write_npz', 'save_grid_png', 'write_json'):
    monkeypatch.setattr(pipeline, name, record(name))
  monkeypatch.setattr(pipeline.teacher_store, 'load_or_train_teacher_sets',
                      lambda *a, **k: ['set'])
  monkeypatch.setattr(pipeline.teacher_eval, 'evaluate_teachers',
                      lambda *a, **k: np.array([0.5]))
  monkeypatch.setattr(pipeline, '_teacher_list', lambda sets: [('model', 'variables')])
  monkeypatch.setattr(pipeline.recover, 'prepare_targets', lambda *a, **k: None)
  monkeypatch.setattr(pipeline.recover, 'synthesize', lambda *a, **k: (
      np.zeros((6, 8, 8, 1), np.float32), np.repeat(np.arange(3), 2)))
  touched = []   # gs:// paths only: no network; local ones (e.g. jax's cache) as usual
  gpath = type(epath.Path('gs://bucket/run'))
  mkdir, exists = gpath.mkdir, gpath.exists
  gs = lambda p: str(p).startswith('gs://')
  monkeypatch.setattr(gpath, 'mkdir', lambda self, *a, **k: touched.append(str(self))
                      if gs(self) else mkdir(self, *a, **k))
  monkeypatch.setattr(gpath, 'exists', lambda self: False if gs(self) else exists(self))
  pipeline.run(config, 'gs://bucket/run', evaluate=False, log=lambda *a: None)
  assert {k: (type(v), str(v)) for k, v in written.items()} == {
      name: (gpath, f'gs://bucket/run/{file}') for name, file in (
          ('write_npz', 'distilled.npz'), ('save_grid_png', 'distilled.png'),
          ('write_json', 'results.json'))}
  assert touched == ['gs://bucket/run']


# ---- Caches: process 0 writes, every process waits for it.


@pytest.mark.parametrize('process', [0, 1])
def test_only_process_0_writes_a_cache_and_all_wait(process, tmp_path, monkeypatch):
  barriers = []
  monkeypatch.setattr(store.jax, 'process_count', lambda: 2)
  monkeypatch.setattr(store.jax, 'process_index', lambda: process)
  monkeypatch.setattr(store.multihost_utils, 'sync_global_devices', barriers.append)
  store.write_file_atomically(tmp_path / 'a.npz', lambda f: f.write(b'x'))
  store.write_dir_atomically(tmp_path / 'b', lambda d: (d / 'f').write_text('y'))
  assert sorted(os.listdir(tmp_path)) == (['a.npz', 'b'] if process == 0 else [])
  assert barriers == ['jaxdd.store:a.npz', 'jaxdd.store:b']


def test_a_cache_counts_only_when_every_process_has_it(tmp_path, monkeypatch):
  (tmp_path / 'here').write_text('')
  monkeypatch.setattr(store.jax, 'process_count', lambda: 2)
  for other in (1, 0):   # what the other process reports
    monkeypatch.setattr(store.multihost_utils, 'process_allgather',
                        lambda x, other=other: np.array([x, other]))
    assert store.cached(tmp_path / 'here') == bool(other)
    assert not store.cached(tmp_path / 'missing')
