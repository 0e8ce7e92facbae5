r"""FRePo on MNIST, sized for a CPU (Zhou, Nezhadarya & Ba, NeurIPS 2022; docs/methods.md §1
FRePo; yongchao97/FRePo).

    python -m jaxdd.launch --config=configs/frepo_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured. The reference runs 500k steps with a real batch of 1024; here
``steps`` is CPU-sized and the real batch is 64 per class.
Paper: FRePo ConvNet on MNIST 98.6 % at IPC 10 (its Table 1).
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  return kernel.frepo_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
