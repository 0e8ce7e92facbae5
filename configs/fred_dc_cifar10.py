r"""FreD + DC on CIFAR-10 (Shin, Shin & Moon, NeurIPS 2023; docs/methods.md §2 FreD).

    python -m jaxdd.launch --config=configs/fred_dc_cifar10.py:2 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not yet measured.
Paper: FreD+DC numbers are not quoted here (not checked against the paper).
The IPC defaults to 2 (the authors' script), or 1 with ``runlocal``.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  # ipc=0 means "not given": 2 for a paper-style run, 1 for runlocal.
  arg = parse_arg(arg, ipc=0, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  # The authors' msz 32 (sdh0818/FreD DC/scripts/run_DC_FreD.sh); runlocal: msz 64, 16
  # instances per class, what the 16-image stand-in data can initialise.
  return matching.fred_dc_config(
      'tfds:cifar10', arg.ipc or (1 if arg.runlocal else 2), iterations=arg.iterations,
      outer_loop=arg.outer_loop, inner_loop=arg.inner_loop, msz=32, runlocal_msz=64,
      runlocal=arg.runlocal)
