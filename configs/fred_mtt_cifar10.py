r"""FreD + MTT on CIFAR-10 (Shin, Shin & Moon, NeurIPS 2023; docs/methods.md §2 FreD).

    python -m jaxdd.launch --config=configs/fred_mtt_cifar10.py:1 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Settings: sdh0818/FreD TM scripts.
Paper (Table 1): FreD+TM 60.6 % (IPC 1), 70.3 % (IPC 10), 75.8 % (IPC 50), ConvNet-3.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=15000, runlocal=False)
  return trajectory.fred_mtt_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
