r"""KIP on CIFAR-10 (Nguyen, Chen & Lee, ICLR 2021 / Nguyen, Novak, Xiao & Lee, NeurIPS
2021; METHODS.md §1 KIP; google-research kip/KIP.ipynb). IPC by argument.

Paper: KIP's tables report kernel (and finite-width transfer) accuracies under their
own evaluation, not jaxdd's protocol, so they are not quoted here.

    python -m jaxdd.launch --config=configs/kip_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run: the infinite-width ConvNet kernel holds a
(H·W)² covariance per image pair). Settings (the notebook): kernel ridge regression
from the synthetic set to a class-balanced real batch of 5000 (500 per class),
K_ts (K_ss + 1e-6·tr(K_ss)/n·I)⁻¹ y_s, loss 0.5·MSE to centred one-hot targets; Adam
0.04 on the images and the learned labels; neural-tangents' infinite-width ConvNet-3
NTK (W_std √2, b_std 0.1) in float32 (the notebook enables x64, which crashes jaxlib
>= 0.8 on the conv kernel: DESIGN.md), the ``nt`` extra; the KIP/FRePo ZCA
(per-image normalisation, then 0.1·mean-eigenvalue regularisation). Evaluation: jaxdd's
protocol with the MSE loss on the learned labels (a ConvNet trained with SGD), not
KIP's kernel evaluation.
"""

from jaxdd.config_utils import base_config, kip_update, parse_arg, shrink_for_runlocal


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  c = base_config(data='tfds:cifar10', ipc=arg.ipc)
  c.zca = 'krr'
  c.steps = arg.steps
  c.checkpoint_every = 200
  c.log_every = 20
  kip_update(c, batch_real=500, kernel_arch='conv')
  if arg.runlocal:
    # The conv NTK of 32x32 images is too heavy for a smoke run: the FC kernel, a
    # handful of real images, no ZCA.
    c.objective.update(batch_real=4, kernel_arch='fc')
    c.zca = 'none'
    shrink_for_runlocal(c)
  return c
