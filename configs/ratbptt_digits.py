r"""RaT-BPTT on scikit-learn's 8x8 digits, sized for 2 CPU cores (METHODS.md §1 RaT-BPTT).

    python -m jaxdd.launch --config=configs/ratbptt_digits.py:ipc=1,steps=2000

The settings of configs/ratbptt_mnist.py (Adam 1e-3 inner and outer, outer gradient
clipping at 2x the running norm, learned labels clamped >= 0, random truncation: a
window of 20 of 60 inner steps, a real batch of 64 per class, DSA's 'crop_scale_rotate',
300-epoch evaluation) on the digits data set, whose steps are ~10x cheaper than MNIST's.
jaxdd, 2 CPU cores, IPC 1, 2000 steps: 62.14 ± 1.71 % vs 63.57 ± 1.41 % for a random real
subset: NOT above it at this budget (the README results table has the variants tried).
"""

from jaxdd.config_utils import sibling_on_digits


def get_config(arg=None):
  return sibling_on_digits(__file__, 'ratbptt_mnist.py', arg)
