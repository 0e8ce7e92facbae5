r"""PAD on MNIST, sized for a CPU (docs/methods.md §2 PAD): configs/mtt_mnist.py plus PAD.

    python -m jaxdd.launch --config=configs/pad_mnist.py:ipc=10,steps=40 \
        --config.data=npz:/tmp/mnist6k/mnist.npz --config.objective.experts.epochs=10 \
        --config.objective.max_start_epoch=5 --config.eval.seeds=3

jaxdd, 2 CPU cores (AMD EPYC), that command (mtt_mnist's 10-epoch buffer on its 6k
subset): 93.42 ± 0.16 % vs MTT 93.34 ± 0.15 % under the same flags and random subset
93.04 ± 0.11 %.
``expert_schedule=pad`` in the argument trains PAD's EL2N-scheduled experts.
Paper: CIFAR-10 only (configs/pad_cifar10.py).
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500, expert_schedule='none', runlocal=False)
  return trajectory.pad_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.expert_schedule,
                                   arg.runlocal)
