r"""KIP on scikit-learn's 8x8 digits, sized for 2 CPU cores (METHODS.md §1 KIP).

    python -m jaxdd.launch --config=configs/kip_digits.py:10

The settings of configs/kip_mnist.py (kernel ridge regression with neural-tangents'
fully connected NTK of depth 3, trace-scaled ridge 1e-6, centred one-hot targets, Adam
0.04 on the images and the learned labels, a target batch of 64 per class; evaluation
of a ConvNet with the MSE loss on the learned labels, 300 epochs) on the digits data
set. jaxdd, 2 CPU cores, 1000 steps: 92.53 ± 1.00 % vs 87.97 ± 0.50 % for a random real
subset (5 seeds; benchmarks/results/runs/kip_digits_ipc10_1000steps.json).
"""

from jaxdd.config_utils import sibling_on_digits


def get_config(arg=None):
  return sibling_on_digits(__file__, 'kip_mnist.py', arg)
