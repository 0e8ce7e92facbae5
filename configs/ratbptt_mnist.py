r"""RaT-BPTT on MNIST, sized for a CPU (METHODS.md §1 RaT-BPTT; the reference has no
MNIST setting).

    python -m jaxdd.launch --config=configs/ratbptt_mnist.py:1 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, 2 CPU cores, IPC 1, 200 steps (28 min, cores partly shared): 77.12 ± 1.51 % vs
54.16 ± 1.70 % for a random real subset (5 seeds). Settings: those of
configs/ratbptt_cifar10.py (Adam 1e-3 inner and outer, outer gradient clipping at 2x
the running norm, learned labels clamped >= 0, random truncation) shortened for 2 CPU
cores: window 20 of a total 60 inner steps, a real batch of 64 per class; no ZCA; the
augmentation is DSA's 'crop_scale_rotate' (digits must not be flipped). Evaluation:
jaxdd's protocol (SGD, 300 epochs here).
"""


from jaxdd.config_utils import base_config, parse_arg, ratbptt_update, shrink_for_runlocal


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=500, runlocal=False)
  c = base_config(data='tfds:mnist', ipc=arg.ipc)
  c.steps = arg.steps
  c.checkpoint_every = 100
  c.log_every = 20
  c.parameterization.learn_labels = True
  ratbptt_update(c, batch_real=64, window=20, total_window=60, batch_syn=0,
                 dsa_strategy='crop_scale_rotate', complete_random=True)
  c.eval.epochs = 300
  c.eval.dsa_strategy = 'crop_scale_rotate'
  if arg.runlocal:
    c.objective.update(batch_real=8, window=2, total_window=4)
    shrink_for_runlocal(c)
  return c
