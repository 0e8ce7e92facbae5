r"""FRePo on MNIST, sized for a CPU (Zhou, Nezhadarya & Ba, NeurIPS 2022; METHODS.md §1
FRePo; yongchao97/FRePo).

Paper: FRePo ConvNet on MNIST 98.6 % at IPC 10 (its Table 1).

    python -m jaxdd.launch --config=configs/frepo_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured. Settings: kernel ridge regression on the last-layer features
of one member of a pool of 10 ConvNet-3 (batch norm) networks, each trained one Adam
(3e-4) step per iteration on the synthetic set and re-initialised at age 100; the same
trace-scaled 1e-6 ridge as KIP; centred one-hot targets; learned labels initialised to
centred one-hot / √(C/10), plus the label-margin term; LAMB 3e-4 with cosine decay to
0.1x on images and labels. The reference runs 500k steps with a real batch of 1024;
here ``steps`` is CPU-sized and the real batch is 64 per class. Evaluation: jaxdd's
protocol with the MSE loss on the learned labels (FRePo evaluates with MSE too, but
with Adam and its own schedule), 300 epochs here.
"""

from jaxdd.config_utils import base_config, frepo_update, parse_arg, shrink_for_runlocal


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  c = base_config(data='tfds:mnist', ipc=arg.ipc)
  c.steps = arg.steps
  c.checkpoint_every = 200
  c.log_every = 20
  frepo_update(c, batch_real=64, steps=arg.steps)
  c.eval.epochs = 300
  if arg.runlocal:
    c.objective.update(batch_real=8, pool_size=2, max_age=2)
    shrink_for_runlocal(c)
    c.optim.images.cosine_decay_steps = c.optim.labels.cosine_decay_steps = c.steps
  return c
