r"""DATM on MNIST, sized for a CPU (docs/methods.md §1 DATM; DATM reports no MNIST setting).

    python -m jaxdd.launch --config=configs/datm_mnist.py:ipc=10,steps=40 \
        --config.data=npz:/tmp/mnist6k/mnist.npz --config.objective.experts.epochs=10 \
        --config.objective.max_start_epoch=5 \
        --config.objective.max_start_epoch_initial=4 \
        --config.objective.expansion_end_step=16 --config.eval.seeds=3

jaxdd, 2 CPU cores (AMD EPYC), that command (the stronger buffer of 10 experts x 10
epochs on configs/mtt_mnist.py's 6k subset): 95.49 ± 0.11 % vs MTT 93.34 ± 0.15 % and
the random subset 93.00 ± 0.15 % (same soft-CE protocol). Paper: no MNIST setting.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500, runlocal=False)
  return trajectory.datm_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
