r"""FreD + MTT on MNIST, sized for a CPU (docs/methods.md §2 FreD).

    python -m jaxdd.launch --config=configs/fred_mtt_mnist.py:1 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured. MTT's CPU-sized settings (configs/mtt_mnist.py) with FreD's
parameterization; lower ``--config.optim.images.lr`` by 10-100x if the decoded images
blow up (as the authors' rate did under DM on MNIST).
Paper: FreD reports no MNIST TM run.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=500, runlocal=False)
  return trajectory.fred_mtt_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
