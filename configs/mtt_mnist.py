r"""MTT on MNIST, sized for a CPU (docs/methods.md §1 MTT; MTT reports no MNIST setting).

    python benchmarks/subset_npz.py ../shared/data/mnist.npz 600 /tmp/mnist6k/mnist.npz
    python -m jaxdd.launch --config=configs/mtt_mnist.py:ipc=1,steps=200 \
        --config.data=npz:/tmp/mnist6k/mnist.npz

jaxdd, 2 CPU cores (AMD EPYC), 5 seeds, the buffer (10 experts x 5 epochs, cached under
~/.cache/jaxdd/experts) trained on that class-balanced 6k subset: 85.48 ± 2.19 % vs random
subset 53.87 ± 1.22 %; at IPC 10 (80 iterations) 92.12 ± 0.32 %, below its 93.01 ± 0.25 %.
Paper: MTT reports no MNIST setting (CIFAR-10: configs/mtt_cifar10.py).
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500, runlocal=False)
  return trajectory.mtt_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
