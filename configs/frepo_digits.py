r"""FRePo on scikit-learn's 8x8 digits, sized for 2 CPU cores (METHODS.md §1 FRePo).

    python -m jaxdd.launch --config=configs/frepo_digits.py:10

The settings of configs/frepo_mnist.py (kernel ridge regression on the last-layer
features of a pool of 10 ConvNet-3 batch-norm networks, each stepped once per iteration
with Adam 3e-4 and reset at age 100, ridge 1e-6, learned labels with the label-margin
term, LAMB 3e-4 with cosine decay, a real batch of 64 per class; MSE evaluation of the
learned labels, 300 epochs) on the digits data set. jaxdd, 2 CPU cores: 1000 steps
89.07 ± 0.47 %, 3000 steps 89.29 ± 0.65 % vs 87.97 ± 0.50 % for a random real subset
(5 seeds; benchmarks/results/runs/frepo_digits_*).
"""

from jaxdd.config_utils import sibling_on_digits


def get_config(arg=None):
  return sibling_on_digits(__file__, 'frepo_mnist.py', arg)
