r"""EDC (METHODS.md §2 EDC) on MNIST,
sized for 2 CPU cores. IPC by argument.

    python -m jaxdd.launch --config=configs/edc_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured. The squeeze -> recover -> relabel pipeline (jaxdd/sre.py) with
configs/edc_cifar10.py's method settings, shortened (``sre.small_config``): three
teachers used in turn (ConvNet-3 width 64, ConvNet-2 width 64, ConvNet-3 width 32;
batch norm), each trained 3 epochs (SGD 0.1, cosine, crop padding 2, no flip); the
authors' 75 recover iterations per batch of one image per class, no flips, RRC area
≥ 0.5 ; relabel 300 epochs (multistep and weight EMA scaled), batch 50,
ConvNet-3 students, 5 seeds, final-epoch accuracy; the random real subset is scored
with the same relabel protocol.
"""

from jaxdd.config_utils import parse_arg
from jaxdd.sre.pipeline import small_config


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=75, epochs=300, runlocal=False)
  return small_config('edc', 'tfds:mnist', arg.ipc, arg.runlocal, arg.iterations, arg.epochs)
