r"""PoDD on scikit-learn's 8x8 digits, sized for 2 CPU cores (METHODS.md §2 PoDD).

    python -m jaxdd.launch --config=configs/podd_digits.py:ipc=0.5,steps=1000
    python -m jaxdd.launch --config=configs/podd_digits.py:ipc=1,steps=1000 \
        --config.objective.batch_syn=48

The settings of configs/podd_mnist.py (a poster on the 2×5 class grid in PoCO order of
the class names' text embeddings, Gaussian class tiles, patches at the paper's CIFAR-10
density, PoDDL learned labels clamped >= 0, distilled with RaT-BPTT: window 20 of 60
inner steps, Adam 1e-3 inner and outer, a real batch of 64 per class; 300-epoch
evaluation on the patches with cross-entropy against their label distributions) on the
digits data set: at 0.5 IPC an 11×29 poster of 8×8 patches, at 1 IPC 16×40.

Changes from podd_mnist. Learned labels pooled over whole label cells as the authors' code does
(``label_pool='crop'``), not by the paper's area average (podd_mnist's default): at 1 IPC,
10×4 patches, 1200 steps, crop 83.19 ± 0.97 %, area 75.49 ± 1.70 % (on 8×8 patches
area gives straddling patches soft labels; crop the class of one cell); the paper's fixed
majority-class labels (``--config.parameterization.learn_labels=false``): 78.68 ± 1.08 %.
For the CPU budget, the class tiles start from real images (``init='real'``:
one per class, resized into its tile and blended as the Gaussian tiles are), not from
the paper's unit-norm Gaussian tiles. Those are 1/8 of the norm of a normalised 8×8
digit, and with Adam at 1e-3 the poster stayed at chance (real-batch loss 2.33) through
the first 100 steps, measured with and without the KRR ZCA; the paper runs thousands of
steps more than a CPU allows here.
ConvNet-2 for distillation and evaluation (``config_utils.two_blocks_on_digits``:
ConvNet-3's 2x2 instance norm makes unrolled training on 8x8 images chaotic).
jaxdd, 2 CPU cores, 5 seeds, random real subset (IPC 1, same ConvNet-2) 65.00 ± 0.71 %:
0.5 IPC, 1000 steps: 77.47 ± 1.93 % (real-image tiles), 75.16 ± 2.92 % (the paper's
Gaussian tiles, ``--config.parameterization.init=tiles``); 1 IPC, 1500 steps, 48 of the
112 patches per inner step: 72.31 ± 1.94 %; all 112 (``batch_syn=0``): 80.82 ± 0.70 %;
both below RaT-BPTT's 85.16 % at IPC 1 (these ran with ``--config.select.every=0``).
With the model selection of configs/podd_mnist.py, 1 IPC, 10×4 patches all per step,
2000 steps: the poster of step 1700 (training accuracy 85.97 %) scores 82.09 ± 0.80 %. With
ConvNet-3: 16.10 % at 0.5 IPC, 10.16 % at 1 IPC. Patch density at 1 IPC, 1500 steps, all
patches per step, no selection: 7×3 patches 81.43 ± 1.05 %, 5×2 (the class tiles, no
overlap) 84.34 ± 1.10 %, against RaT-BPTT's 85.16 ± 0.35 %. Over three distillation
seeds (``--config.seed=0,1,2``; the seed picks the real init images, also the random
subset), 5×2 patches, 1500 steps: 87.20 ± 2.17 % (84.34 / 88.52 / 88.74) vs RaT-BPTT
87.00 ± 1.55 % (85.16 / 88.30 / 87.53), 15 evaluations each: PoDD does not lose at 1 IPC
on its class tiles. With overlapping patches it does: 10×4 patches, 1200 steps, the same
three seeds: 83.19 ± 2.42 % (83.19 / 85.93 / 80.44; seed 2 below its random subset's
82.75 %) (benchmarks/results/runs/podd_vs_ratbptt_digits_ipc1_seeds.json).
"""

from jaxdd.config_utils import sibling_on_digits, two_blocks_on_digits


def get_config(arg=None):
  c = two_blocks_on_digits(sibling_on_digits(__file__, 'podd_mnist.py', arg))
  c.parameterization.init = 'real'
  # Measured (docstring): the authors' whole-cell label windows beat the paper's area
  # pooling on 8x8 digits (83.19 vs 75.49 % at 1 IPC, 10x4 patches, 1200 steps).
  c.parameterization.label_pool = 'crop'
  return c
