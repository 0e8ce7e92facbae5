r"""CFM (METHODS.md §2 UniDD / CFM) on scikit-learn's 8x8 digits,
sized for 2 CPU cores. IPC by argument.

    python -m jaxdd.launch --config=configs/cfm_digits.py:10

jaxdd (IPC 10; README results table, 2 cores of an AMD EPYC): 97.58 ± 0.77 % (cosine
curriculum), 97.58 ± 0.32 % (fixed β) vs the random subset under the same relabel
97.58 ± 0.32 %: the relabel protocol saturates on digits (with the unscaled recover
jitter of 4 px, ``--config.recover.jitter=4``: 97.47 ± 0.21 % / 97.75 ± 0.40 %).

The squeeze -> recover -> relabel pipeline (jaxdd/sre.py) with
configs/cfm_cifar10.py's method settings, shortened (``sre.small_config``): teachers
ConvNet-3 (width 64, batch norm) trained 30 epochs (SGD 0.1, cosine, crop padding 1, no
flip); 300 recover iterations per batch of one image per class (the authors' 1000 /
75 for EDC), roll jitter 1 px (the authors' 4 on 32x32), no flips, RRC area ≥ 0.5 on
8x8 images; relabel 300 epochs, batch 50,
ConvNet-3 students, 5 seeds, final-epoch accuracy; the random real subset is scored
with the same relabel protocol.
"""

from jaxdd.config_utils import parse_arg
from jaxdd.sre.pipeline import small_config


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=300, epochs=300, runlocal=False)
  return small_config('cfm', 'digits', arg.ipc, arg.runlocal, arg.iterations, arg.epochs)
