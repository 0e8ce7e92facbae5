"""Start a distillation: ``python -m jaxdd.launch --config=configs/NAME.py[:ARG]``.

Flags:
  --config     an ml_collections config file; ``:ARG`` is passed to its ``get_config``;
               any field can be overridden, e.g. ``--config.data=npz:../shared/data/mnist.npz``.
  --workdir    where checkpoints and outputs go (default ``runs/NAME[_ARG]``). Running
               the same command again resumes from the last checkpoint.
  --multihost  call ``jax.distributed.initialize()`` first (TPU pods, multi-GPU hosts).
  --evaluate   run the evaluation protocol at the end (default true).

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
from jaxdd.outputs import write_json
from jaxdd.sre import pipeline as sre

_CONFIG = config_flags.DEFINE_config_file('config', None, 'config file', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'output directory (default runs/NAME[_ARG])')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'call jax.distributed.initialize()')
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


def main(argv):
  del argv

  if _MULTIHOST.value:
    # Cloud TPU and SLURM are detected by JAX itself; elsewhere the launch scripts set
    # JAX_COORDINATOR_ADDRESS (read by JAX), JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    env = {k: int(os.environ[v]) for k, v in (('num_processes', 'JAX_NUM_PROCESSES'),
                                               ('process_id', 'JAX_PROCESS_ID'))
           if v in os.environ}
    jax.distributed.initialize(**env)
  if not flags.FLAGS['verbosity'].present:
    # Orbax logs every checkpoint at INFO; the progress lines are ours. --verbosity=0
    # (or -v 0) brings them back.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(_config_argument())
  try:
    if config is None:
      raise ConfigError('--config is required, e.g. --config=configs/quickstart.py')
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
      write_json(os.path.join(workdir, 'config.json'), config.to_dict())
      print(f'workdir: {workdir}', flush=True)
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
