r"""EDC (docs/methods.md §2 EDC) on MNIST, sized for 2 CPU cores. IPC by argument.

    python -m jaxdd.launch --config=configs/edc_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured.
Paper: no MNIST setting (CIFAR-10 ResNet-18: 79.1 %).
Results and experiment log: docs/results/sre.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import sre


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=75, epochs=300, runlocal=False)
  return sre.small_config('edc', 'tfds:mnist', arg.ipc, arg.runlocal, arg.iterations,
                          arg.epochs)
