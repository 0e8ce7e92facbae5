"""Start a distillation: ``python -m jaxdd.launch --config=configs/NAME.py[:ARG]``.

Flags:
  --config     an ml_collections config file; ``:ARG`` is passed to its ``get_config``;
               any field can be overridden, e.g. ``--config.data=npz:../shared/data/mnist.npz``.
  --workdir    where checkpoints and outputs go (default ``runs/NAME[_ARG]``): a local
               directory or a URL such as ``gs://BUCKET/DIR`` (a multi-host run needs
               one every process sees). Running the same command again resumes from
               the last checkpoint.
  --coordinator_address=HOST:PORT --num_processes=N --process_id=I
               one process of a multi-process run (all three, or none): calls
               ``jax.distributed.initialize`` with them (launch/multi_gpu_host.sh,
               launch/slurm_gpu.sh).
  --multihost  call ``jax.distributed.initialize()`` without arguments: JAX finds the
               processes itself on Cloud TPU and under SLURM (launch/tpu_pod.sh).
  --evaluate   run the evaluation protocol at the end (default true).

A multi-process run prints ``process I of N, D devices (L local)`` on every process;
process 0 writes the outputs, every process takes part in the checkpoints.

Errors in the config or the data end with one line on stderr and exit status 2; a
non-finite loss ends with exit status 3 and keeps the last good checkpoint.
"""

import os
import re
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags
import jax
from jaxdd import distill
from jaxdd.errors import ConfigError, DataError
from jaxdd.outputs import as_path, write_json
from jaxdd.sre import pipeline as sre

_CONFIG = config_flags.DEFINE_config_file('config', None, 'config file', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'output directory (default runs/NAME[_ARG])')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, "HOST:PORT of process 0's coordinator (multi-process)")
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'processes of a multi-process run')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, "this process's id, 0 .. N-1")
_MULTIHOST = flags.DEFINE_bool(
    'multihost', False, 'call jax.distributed.initialize() without arguments (Cloud TPU, '
    'SLURM: JAX detects the processes)')
_EVALUATE = flags.DEFINE_bool('evaluate', True, 'evaluate the distilled set at the end')


def default_workdir(config_arg: str) -> str:
  path, _, arg = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  if arg:
    name += '_' + re.sub(r'[^A-Za-z0-9.=-]+', '_', arg)
  return os.path.join('runs', name)


def _config_argument() -> str:
  """The raw ``--config`` value (file and ``:ARG``), as the user typed it."""
  args = sys.argv[1:]
  for i, a in enumerate(args):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(args):
      return args[i + 1]
  return 'run'


def distributed_args(coordinator_address, num_processes, process_id,
                     multihost: bool) -> dict | None:
  """The arguments of ``jax.distributed.initialize`` the flags ask for: None (one
  process), {} (``--multihost``: JAX detects the cluster) or all three.

  Raises:
    ConfigError: some but not all of the three flags, or values out of range.
  """
  given = {'coordinator_address': coordinator_address, 'num_processes': num_processes,
           'process_id': process_id}
  missing = [f'--{k}' for k, v in given.items() if v is None]
  if len(missing) == 3:
    return {} if multihost else None
  if missing:
    raise ConfigError(f'--coordinator_address, --num_processes and --process_id go '
                      f'together; missing {", ".join(missing)}')
  if not re.fullmatch(r'.+:[0-9]+', coordinator_address):
    raise ConfigError(f'--coordinator_address must be HOST:PORT, got '
                      f'{coordinator_address!r}')
  if num_processes < 1:
    raise ConfigError(f'--num_processes must be a positive integer, got {num_processes}')
  if not 0 <= process_id < num_processes:
    raise ConfigError(f'--process_id must be in 0 .. {num_processes - 1}, got '
                      f'{process_id}')
  return given


def initialize_distributed(args: dict) -> None:
  """``jax.distributed.initialize(**args)``; CPU processes exchange collectives over
  gloo (TCP), which must be chosen before the backend starts."""
  platforms = (jax.config.jax_platforms or '').split(',')
  if (platforms[0] in ('', 'cpu')
      and 'JAX_CPU_COLLECTIVES_IMPLEMENTATION' not in os.environ):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**args)
  if jax.process_count() > 1:
    print(f'process {jax.process_index()} of {jax.process_count()}, '
          f'{jax.device_count()} devices ({jax.local_device_count()} local)', flush=True)


def main(argv):
  del argv

  try:
    args = distributed_args(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                            _MULTIHOST.value)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if args is not None:
    initialize_distributed(args)
  if not flags.FLAGS['verbosity'].present:
    # Orbax logs every checkpoint at INFO; the progress lines are ours. --verbosity=0
    # (or -v 0) brings them back.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(_config_argument())
  try:
    if config is None:
      raise ConfigError('--config is required, e.g. --config=configs/quickstart.py')
    if jax.process_index() == 0:
      print(f'workdir: {workdir}', flush=True)
    workdir = as_path(workdir)   # a URL (gs://...) stays one
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      write_json(workdir / 'config.json', config.to_dict())
    if config.get('pipeline', 'distill') == 'sre':   # squeeze -> recover -> relabel
      sre.run(config, workdir, evaluate=_EVALUATE.value)
    elif config.get('pipeline', 'distill') == 'distill':
      distill.train_and_evaluate(config, workdir, evaluate=_EVALUATE.value)
    else:
      raise ConfigError(f"pipeline must be one of 'distill', 'sre', got "
                        f"{config.pipeline!r}")
  except (ConfigError, DataError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except distill.NonFiniteLossError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)


if __name__ == '__main__':
  app.run(main)
