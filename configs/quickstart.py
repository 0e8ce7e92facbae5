r"""Quickstart: Distribution Matching on scikit-learn's digits, 10 images per class.

Runs offline (8x8 images, bundled with scikit-learn), then trains 5 fresh ConvNets on the
distilled set and 5 on a random real subset of the same size, and prints both accuracies.

    python -m jaxdd.launch --config=configs/quickstart.py

jaxdd, 2 CPU cores (AMD EPYC), 5 seeds, 300-epoch DSA evaluation: distilled
90.38 ± 0.98 %, random subset of the same size 87.97 ± 0.50 %, 1 min 39 s in all.
Paper: none (DM's paper has no digits setting; on MNIST at IPC 10: 97.5 %).
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, runlocal=False)
  return matching.dm_quickstart_config('digits', arg.ipc, arg.runlocal)
