r"""KIP on MNIST, sized for a CPU (Nguyen, Chen & Lee, ICLR 2021 / NeurIPS 2021;
METHODS.md §1 KIP; google-research kip/KIP.ipynb).

Paper: MNIST results in KIP's tables are kernel evaluations (not quoted here).

    python -m jaxdd.launch --config=configs/kip_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd (2 CPU cores, README results), IPC 10, 1000 steps: 41.50 +- 7.37 % vs random
subset 91.69 +- 0.54 % under the MSE evaluation of the learned labels (they grew to
magnitude 6); the same images with one-hot labels and cross-entropy: 87.98 +- 0.55 %.
The FC NTK's images do not transfer to a ConvNet here.

Settings: kernel ridge regression from the synthetic set to a
class-balanced real batch, K_ts (K_ss + 1e-6·tr(K_ss)/n·I)⁻¹ y_s, loss 0.5·MSE to
centred one-hot targets; Adam 0.04 on the images (and the learned labels); the kernel
is neural-tangents' infinite-width NTK (W_std √2, b_std 0.1) in float32 (the notebook
enables x64, which crashes jaxlib >= 0.8 on the conv kernel: see DESIGN.md), needing
the ``nt`` extra; ``kernel=empirical_ntk`` needs none. For a CPU: the fully connected
NTK of depth 3 (KIP's FC networks; the infinite-width ConvNet kernel holds a
(H·W)² covariance per image pair, gigabytes at 28x28: ``kernel_arch=conv`` for a GPU
run), a target batch of 64 per class (the notebook's is 5000), no ZCA (MNIST).
Evaluation: jaxdd's protocol (a ConvNet trained with SGD on the
images and their labels, 300 epochs here), not KIP's kernel evaluation.
"""

from jaxdd.config_utils import base_config, kip_update, parse_arg, shrink_for_runlocal


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  c = base_config(data='tfds:mnist', ipc=arg.ipc)
  c.steps = arg.steps
  c.checkpoint_every = 200
  c.log_every = 20
  kip_update(c, batch_real=64, kernel_arch='fc')
  c.eval.epochs = 300
  if arg.runlocal:
    c.objective.update(batch_real=8)
    shrink_for_runlocal(c)
  return c
