r"""DC on MNIST (Zhao, Mopuri & Bilen, ICLR 2021; METHODS.md §1 DC / DSA). IPC 1 / 10 / 50.

Paper: 91.7 % (IPC 1), 97.4 % (IPC 10), ConvNet-3.

    python -m jaxdd.launch --config=configs/dc_mnist.py:10                       # tfds
    python -m jaxdd.launch --config=configs/dc_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz                                # offline

jaxdd, 2 CPU cores, real batch 64/class, evaluation shortened to 300 epochs (5 seeds):
IPC 1, 300 iterations: 88.19 ± 0.50 % vs 54.27 ± 1.66 % for a random real subset;
IPC 10, 20 iterations with real init (noise init needs far more iterations than a CPU
affords): 96.28 ± 0.10 % vs 93.37 ± 0.17 % (benchmarks/results/runs/dc_mnist_*.json):

    python -m jaxdd.launch --config=configs/dc_mnist.py:ipc=10,iterations=20 \
        --config.data=npz:../shared/data/mnist.npz --config.eval.epochs=300 \
        --config.objective.batch_real=64 --config.parameterization.init=real

Settings (DCrepo main.py, utils.py): 1000 iterations, each a
fresh ConvNet-3 (width 128, instance norm; the first conv pads 28x28 by 3) and
outer_loop image updates with inner_loop epochs of network training between them,
(outer, inner) = (1, 1) / (10, 50) / (50, 10) for IPC 1 / 10 / 50, so steps =
1000·outer_loop (a jaxdd step is one image update); SGD lr_img 0.1, momentum 0.5; real
batch 256 per class; noise init; no DSA, no ZCA; inner training plain SGD lr_net 0.01,
batch 256.

Evaluation: DCrepo evaluates DC on MNIST with its non-differentiable DC augmentation
(get_daparam: 'crop_scale_rotate', crop 4 px, scale ±20 %, rotation ±45°) and therefore
1000 epochs. jaxdd evaluates with DSA's crop, scale and rotate groups (the strategy
'crop_scale_rotate', with DSA's ranges: rotation ±15°) for 1000 epochs, lr 0.01.
``iterations=N`` in the argument shortens a run; ``outer_loop=O,inner_loop=I`` sets the
loops (required for an IPC outside DCrepo's table).
"""

from jaxdd.config_utils import dc_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  # DCrepo's DC augmentation is crop, scale and rotate; DSA's groups of those names
  # stand in for it (DSA's ranges: scale 1/1.2-1.2, rotation ±15°, not ±45°).
  return dc_config(data='tfds:mnist', ipc=arg.ipc, dsa=False, init='noise',
                   iterations=arg.iterations, eval_dsa=True, eval_epochs=1000,
                   eval_dsa_strategy='crop_scale_rotate',
                   outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                   runlocal=arg.runlocal)
