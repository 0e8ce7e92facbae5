r"""DSA on MNIST (Zhao & Bilen, ICML 2021; METHODS.md §1 DC / DSA). IPC 1 / 10 / 50.

Paper: 88.7 % (IPC 1), 97.8 % (IPC 10), ConvNet-3.

    python -m jaxdd.launch --config=configs/dsa_mnist.py:10                      # tfds
    python -m jaxdd.launch --config=configs/dsa_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz                                # offline

jaxdd, 2 CPU cores: IPC 1, 300 iterations, real batch 64/class, evaluation shortened to
300 epochs (5 seeds): 85.28 ± 0.66 % vs 54.87 ± 1.24 % for a random real subset
(benchmarks/results/runs/dsa_mnist_ipc1_300it_br64.json). IPC 10, 10 iterations (100
image updates), same settings: 94.88 ± 0.26 % vs 91.68 ± 0.54 %
(dsa_mnist_ipc10_10it_realinit_br64.json).

Settings (DCrepo main.py --method DSA, utils.py): 1000
iterations, each a fresh ConvNet-3 (width 128, instance norm; the first conv pads 28x28
by 3) and outer_loop image updates with inner_loop epochs of network training between
them, (outer, inner) = (1, 1) / (10, 50) / (50, 10) for IPC 1 / 10 / 50, so steps =
1000·outer_loop (a jaxdd step is one image update); SGD lr_img 0.1, momentum 0.5; real
batch 256 per class; real init; no ZCA; Siamese DSA (color_crop_cutout_flip_scale_rotate,
one draw per class shared by its real and synthetic images) in the matching, per-sample
DSA in the inner training (plain SGD lr_net 0.01, batch 256). Evaluation as DCrepo's
for DSA: 1000 epochs with DSA, lr 0.01. ``iterations=N`` in the argument shortens a run;
``outer_loop=O,inner_loop=I`` sets the loops (required for an IPC outside DCrepo's table).
"""

from jaxdd.config_utils import dc_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  return dc_config(data='tfds:mnist', ipc=arg.ipc, dsa=True, init='real',
                   iterations=arg.iterations, eval_dsa=True, eval_epochs=1000,
                   outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                   runlocal=arg.runlocal)
