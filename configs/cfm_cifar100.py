r"""CFM on CIFAR-100 (docs/methods.md §2 UniDD / CFM). IPC by argument.

    python -m jaxdd.launch --config=configs/cfm_cifar100.py:10 \
        --config.data=npz:PATH/cifar100.npz

jaxdd: not measured (a GPU run). configs/cfm_cifar10.py's settings with the paper's
CIFAR-100 squeeze of 100 epochs (Table 2).
Paper (UniDD Table 2, ConvNet-128 / ResNet-18): 58.3 / 64.6 % (IPC 10), 67.1 / 71.4 %
(IPC 50). Results and experiment log: docs/results/sre.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import sre


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, runlocal=False)
  return sre.cfm_cifar_config('tfds:cifar100', arg.ipc, 100, arg.runlocal)
