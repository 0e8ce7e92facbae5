r"""EDC (METHODS.md §2 EDC) on scikit-learn's 8x8 digits,
sized for 2 CPU cores. IPC by argument.

    python -m jaxdd.launch --config=configs/edc_digits.py:10

jaxdd (IPC 10; README results table, 2 cores of an AMD EPYC): 97.80 ± 0.17 % vs the
random subset under the same relabel 97.97 ± 0.13 %: the relabel protocol saturates on
digits.

The squeeze -> recover -> relabel pipeline (jaxdd/sre.py) with
configs/edc_cifar10.py's method settings, shortened (``sre.small_config``): three
teachers used in turn (ConvNet-3 width 64, ConvNet-2 width 64, ConvNet-3 width 32;
batch norm), each trained 30 epochs (SGD 0.1, cosine, crop padding 1, no flip); the
authors' 75 recover iterations per batch of one image per class, no flips, RRC area
≥ 0.5 on 8x8 images; relabel 300 epochs (multistep and weight EMA scaled), batch 50,
ConvNet-3 students, 5 seeds, final-epoch accuracy; the random real subset is scored
with the same relabel protocol.
"""

from jaxdd.config_utils import parse_arg
from jaxdd.sre.pipeline import small_config


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=75, epochs=300, runlocal=False)
  return small_config('edc', 'digits', arg.ipc, arg.runlocal, arg.iterations, arg.epochs)
