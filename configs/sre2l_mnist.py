r"""SRe2L (METHODS.md §1 SRe2L) on MNIST, sized for 2 CPU cores. IPC by argument.

    python -m jaxdd.launch --config=configs/sre2l_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, 2 CPU cores, IPC 10, this command: 96.61 ± 0.23 % vs 98.60 ± 0.10 % for the
random real subset with the same relabel (5 seeds; teacher 99.28 %): loses.
The squeeze -> recover -> relabel pipeline (jaxdd/sre.py) with
configs/sre2l_cifar10.py's method settings, shortened (``sre.small_config``): teachers
ConvNet-3 (width 64, batch norm) trained 3 epochs (SGD 0.1, cosine, crop padding 2, no
flip); 300 recover iterations per batch of one image per class (the authors' 1000 /
75 for EDC), roll jitter 2 px, no flips, RRC area ≥ 0.5; relabel 300 epochs, batch 50,
ConvNet-3 students, 5 seeds, final-epoch accuracy; the random real subset is scored
with the same relabel protocol.
"""

from jaxdd.config_utils import parse_arg
from jaxdd.sre.pipeline import small_config


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=300, epochs=300, runlocal=False)
  return small_config('sre2l', 'tfds:mnist', arg.ipc, arg.runlocal, arg.iterations, arg.epochs)
