r"""MTT on MNIST, sized for a CPU (METHODS.md §1 MTT; MTT reports no MNIST setting).

    python -m jaxdd.launch --config=configs/mtt_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

A CPU-sized buffer: 10 experts x 5 epochs (SGD lr 0.01, batch 256, DSA; trained once,
cached under ~/.cache/jaxdd/experts). Matching: expert_epochs
2, max_start_epoch 3, syn_steps 20 (IPC 1) / 10 (IPC 10), batch_syn = the whole set,
lr_img 100, lr_lr 1e-5 (1e-7 at IPC 1, as MTT's CIFAR-10 table), initial syn_lr 0.01,
no ZCA, 500 iterations; evaluation 300 epochs with DSA's crop, scale and rotate at the
learned syn_lr. ``--config.objective.checkpoint`` picks the unroll's
rematerialisation ('none', 'step', 'nested'; benchmarks/mtt_memory.py);
``objective.grad_chunks`` is 2 here (each student step's gradient in two rematerialised
halves: +0.66 GB of host memory instead of +1.16 GB, 11 % more time; ``=1`` for the
faster step).

jaxdd, 2 CPU cores, 5 seeds, the buffer trained on a class-balanced 6k subset
(``benchmarks/subset_npz.py ../shared/data/mnist.npz 600 DEST``; experts end at 86.9 %
train accuracy): IPC 1, 200 iterations: 85.48 ± 2.19 % vs random subset 53.87 ± 1.22 %;
IPC 10, 80 iterations: 92.12 ± 0.32 % vs 93.01 ± 0.25 %, below the random subset (so
weak a buffer teaches less than 100 real images). With experts trained 10 epochs on the
same subset (``--config.objective.experts.epochs=10 --config.objective.max_start_epoch=5``),
IPC 10, 40 iterations, 3 seeds: 93.34 ± 0.15 % vs 93.04 ± 0.11 %.
"""

from jaxdd.config_utils import mtt_mnist_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500, runlocal=False)
  return mtt_mnist_config(arg.ipc, arg.steps, arg.runlocal)
