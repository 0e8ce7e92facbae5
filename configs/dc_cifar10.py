r"""DC on CIFAR-10 (Zhao, Mopuri & Bilen, ICLR 2021; METHODS.md §1 DC / DSA). IPC 1 / 10 / 50.

Paper: 28.3 % (IPC 1), 44.9 % (IPC 10), 53.9 % (IPC 50), ConvNet-3.

    python -m jaxdd.launch --config=configs/dc_cifar10.py:10                     # tfds
    python ../shared/data/decode_jpeg_npz.py ../shared/data/cifar10_jpeg_bytes.npz \
        ~/.cache/jaxdd/cifar10.npz                                                # offline
    python -m jaxdd.launch --config=configs/dc_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: accuracy not yet measured; the paper-scale run needs a GPU (at IPC 10 one step,
an image update plus 50 inner epochs, took 28-33 s on 2 shared CPU cores, so the 10k
steps are days). Settings (DCrepo main.py, utils.py): 1000 iterations, each a
fresh ConvNet-3 (width 128, instance norm) and outer_loop image updates with inner_loop
epochs of network training between them, (outer, inner) = (1, 1) / (10, 50) / (50, 10)
for IPC 1 / 10 / 50, so steps = 1000·outer_loop (a jaxdd step is one image update);
SGD lr_img 0.1, momentum 0.5; real batch 256 per class; noise init; no DSA, no ZCA;
inner training plain SGD lr_net 0.01, batch 256. Evaluation as DCrepo's for DC on
CIFAR-10 (get_daparam: no augmentation): 300 epochs without augmentation, lr 0.01.
``iterations=N`` in the argument shortens a run; ``outer_loop=O,inner_loop=I`` sets the
loops (required for an IPC outside DCrepo's table).
"""

from jaxdd.config_utils import dc_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  return dc_config(data='tfds:cifar10', ipc=arg.ipc, dsa=False, init='noise',
                   iterations=arg.iterations, eval_dsa=False, eval_epochs=300,
                   outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                   runlocal=arg.runlocal)
