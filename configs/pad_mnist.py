r"""PAD on MNIST, sized for a CPU (METHODS.md §2 PAD): configs/mtt_mnist.py plus PAD.

    python -m jaxdd.launch --config=configs/pad_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, measured (2 CPU cores): IPC 10 on mtt_mnist's 10-epoch buffer (6k subset, with
``ipc=10,steps=40 --config.objective.experts.epochs=10 --config.objective.max_start_epoch=5
--config.eval.seeds=3``): 93.42 ± 0.16 % vs MTT 93.34 ± 0.15 % under the same flags and
random subset 93.04 ± 0.11 % (README). The same masking on DATM (PAD's base:
configs/datm_mnist.py's command plus ``--config.objective.param_mask=depth
--config.objective.mask_ratio=0.5``): 95.33 ± 0.13 % vs DATM 95.49 ± 0.11 %.

MTT's CPU-sized settings (configs/mtt_mnist.py) with PAD's parameter selection: the
first 50 % (IPC 10; 0 at IPC 1, as PAD's CIFAR-10 table) of the depth-ordered parameter
vector masked out of both terms of the matching loss. The experts are the same cached
buffer as mtt_mnist's (``expert_schedule=pad`` in the argument trains PAD's
EL2N-scheduled experts instead, with the data schedule scaled to the 5-epoch buffer: all
data by epoch 2, the easiest 10 % dropped after epoch 3 and 20 % after epoch 4). Hard
labels and real init as MTT's, so the comparison with mtt_mnist isolates the masking.
"""

from jaxdd.config_utils import mtt_mnist_config, pad_update, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500, expert_schedule='none', runlocal=False)
  c = mtt_mnist_config(arg.ipc, arg.steps, arg.runlocal)
  c = pad_update(c, mask_ratio=0.0 if arg.ipc == 1 else 0.5, runlocal=arg.runlocal)
  if arg.expert_schedule != 'pad':
    c.objective.experts.schedule = 'none'
  elif not arg.runlocal:
    c.objective.pad.update(add_end_epoch=2, remove_epochs=(3, 4))
  return c
