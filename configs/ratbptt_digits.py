r"""RaT-BPTT on scikit-learn's 8x8 digits, sized for 2 CPU cores (METHODS.md §1 RaT-BPTT).

    python -m jaxdd.launch --config=configs/ratbptt_digits.py:ipc=1,steps=1500

The settings of configs/ratbptt_mnist.py (Adam 1e-3 inner and outer, outer gradient
clipping at 2x the running norm, learned labels clamped >= 0, random truncation: a
window of 20 of 60 inner steps redrawn every step, a real batch of 64 per class, DSA's
'crop_scale_rotate', 300-epoch evaluation) on the digits data set, whose steps are ~10x
cheaper than MNIST's, with ConvNet-2 for distillation and evaluation
(``config_utils.two_blocks_on_digits``: ConvNet-3's 2x2 instance norm makes unrolled
training on 8x8 images chaotic).
jaxdd, 2 CPU cores, IPC 1, 1500 steps (10 min): 85.16 ± 0.35 % vs 65.00 ± 0.71 % for a
random real subset on the same ConvNet-2 (5 seeds); distillation seeds 1 and 2
(``--config.seed``, which also picks the init images and the random subset): 88.30 ±
0.75 % vs 79.34 ± 1.09 %, 87.53 ± 1.08 % vs 82.75 ± 1.27 %. With ConvNet-3, 2000 steps: 62.14 ±
1.71 % vs 63.57 ± 1.41 % (the meta-loss did not fall).
"""

from jaxdd.config_utils import sibling_on_digits, two_blocks_on_digits


def get_config(arg=None):
  return two_blocks_on_digits(sibling_on_digits(__file__, 'ratbptt_mnist.py', arg))
