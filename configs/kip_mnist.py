r"""KIP on MNIST, sized for a CPU (Nguyen, Chen & Lee, ICLR 2021 / NeurIPS 2021;
docs/methods.md §1 KIP; google-research kip/KIP.ipynb). Needs the ``nt`` extra.

    python -m jaxdd.launch --config=configs/kip_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, 2 CPU cores (AMD EPYC), that command (1000 steps): 41.50 ± 7.37 % vs random subset
91.69 ± 0.54 % under the MSE evaluation of the learned labels: the FC NTK's images do not
transfer to a ConvNet here. Paper: MNIST results in KIP's tables are kernel evaluations.
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  return kernel.kip_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
