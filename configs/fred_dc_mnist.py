r"""FreD + DC on MNIST (Shin, Shin & Moon, NeurIPS 2023; docs/methods.md §2 FreD).

    python -m jaxdd.launch --config=configs/fred_dc_mnist.py:2 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured.
Paper: FreD+DC on MNIST not reported.
The IPC defaults to 2 (the authors' script), or 1 with ``runlocal``.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  # ipc=0 means "not given": 2 for a paper-style run, 1 for runlocal.
  arg = parse_arg(arg, ipc=0, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  # msz 28, not the authors' 32: ipc·784/msz instances per class must be an integer
  # (784/32 = 24.5), and 28 is the divisor of 784 nearest to 32. runlocal: msz 49, 16
  # instances per class, what the 16-image stand-in data can initialise.
  return matching.fred_dc_config(
      'tfds:mnist', arg.ipc or (1 if arg.runlocal else 2), iterations=arg.iterations,
      outer_loop=arg.outer_loop, inner_loop=arg.inner_loop, msz=28, runlocal_msz=49,
      runlocal=arg.runlocal)
