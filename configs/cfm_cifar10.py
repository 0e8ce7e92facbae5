r"""CFM (UniDD's Curriculum Frequency Matching) on CIFAR-10 (docs/methods.md §2 UniDD / CFM).
IPC by argument; ``dataset=cifar100`` is configs/cfm_cifar100.py.

    python -m jaxdd.launch --config=configs/cfm_cifar10.py:ipc=10,cpu \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd, 2 CPU cores (AMD EPYC), that command (CPU-sized ``cpu``): 60.34 ± 1.39 % (cosine β
curriculum) vs the random subset 58.62 ± 0.79 % (teacher 78.91 %; 27 min). The paper's
settings (``:10``) are not measured (a GPU run).
Paper (UniDD Table 2, ConvNet-128 / ResNet-18): 52.1 / 57.0 % (IPC 10), 64.0 / 82.3 %
(IPC 50). Results and experiment log: docs/results/sre.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import sre


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, runlocal=False, cpu=False)
  if arg.cpu:
    return sre.small_config('cfm', 'tfds:cifar10', arg.ipc, arg.runlocal)
  return sre.cfm_cifar_config('tfds:cifar10', arg.ipc, 200, arg.runlocal)
