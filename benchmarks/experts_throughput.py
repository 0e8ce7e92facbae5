"""Benchmark: MTT expert training on MNIST, all experts in one compiled program.

ConvNet-3 (width 128, instance norm; the default ``get_model('convnet', 10,
image_shape=(28, 28, 1))``), plain SGD lr 0.01, batch 256, per-sample DSA, the MTT
expert defaults (``jaxdd.pretrain.experts.ExpertConfig``). The authors' PyTorch code
(``mtt:buffer.py``) takes 180 s per expert-epoch on this machine (2 CPU cores).

    python benchmarks/experts_throughput.py                      # 10 experts x 1 epoch
    python benchmarks/experts_throughput.py --num_experts=2 --epochs=1 \\
        --train_images=2000 --out=/tmp/x.json                    # a quick check

Writes benchmarks/results/experts_throughput.json: the compile time, seconds per
epoch for all experts, seconds per expert-epoch (measured, and scaled to the full
60 000 images for a --train_images run), and the reference's 180 s for comparison.
"""

import argparse
import json
import os
import time

import jax
import numpy as np

import machine
from jaxdd import data as data_lib
from jaxdd import models
from jaxdd.pretrain import experts
from jaxdd.train import members

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_SECONDS_PER_EXPERT_EPOCH = 180.0


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--data', default='npz:/work/shared/data/mnist.npz')
  p.add_argument('--num_experts', type=int, default=10)
  p.add_argument('--epochs', type=int, default=1)
  p.add_argument('--train_images', type=int, default=None,
                 help='train on the first N images only (a quick run)')
  p.add_argument('--seed_loop', default='auto', choices=members.MEMBER_LOOPS)
  p.add_argument('--conv_impl', default='auto', choices=models.layers.CONV_IMPLS)
  p.add_argument('--out', default=os.path.join(HERE, 'results', 'experts_throughput.json'))
  a = p.parse_args()

  ds = data_lib.load_dataset(a.data)
  x, y = ds.x_train, ds.y_train
  if a.train_images:
    x, y = x[:a.train_images], y[:a.train_images]
  image_shape = tuple(x.shape[1:])
  model = models.get_model('convnet', ds.num_classes, image_shape=image_shape,
                           conv_impl=a.conv_impl)
  cfg = experts.ExpertConfig(num_experts=a.num_experts, epochs=a.epochs,
                             seed_loop=a.seed_loop)
  t0 = time.time()
  buf = experts.train_experts(model, image_shape, x, y, ds.num_classes, cfg)
  total = time.time() - t0
  epoch_s = buf.meta['epoch_seconds']
  per_epoch = float(np.mean(epoch_s))  # train_experts compiles before epoch 1
  # Scale to the full training set so a --train_images run is comparable.
  full_scale = ds.x_train.shape[0] / x.shape[0]
  per_expert_epoch = per_epoch / a.num_experts
  result = {
      'benchmark': 'expert trajectories (MTT buffer), all experts at once',
      'data': a.data, 'train_images': int(x.shape[0]),
      'full_train_images': int(ds.x_train.shape[0]),
      'num_experts': a.num_experts, 'epochs': a.epochs, 'batch_size': cfg.batch_size,
      'dsa': cfg.dsa, 'dsa_strategy': cfg.dsa_strategy,
      'model': 'convnet (ConvNet-3 w128 instancenorm)', 'conv_impl': a.conv_impl,
      'seed_loop': a.seed_loop,
      'backend': jax.default_backend(),
      'compile_seconds': buf.meta['compile_seconds'],
      'epoch_seconds': epoch_s,
      'seconds_per_epoch_all_experts': round(per_epoch, 2),
      'seconds_per_expert_epoch': round(per_expert_epoch, 2),
      'seconds_per_expert_epoch_full_data': round(per_expert_epoch * full_scale, 2),
      'reference_pytorch_seconds_per_expert_epoch': REFERENCE_SECONDS_PER_EXPERT_EPOCH,
      'speedup_vs_reference': round(
          REFERENCE_SECONDS_PER_EXPERT_EPOCH / (per_expert_epoch * full_scale), 2),
      'total_seconds': round(total, 1),
      'final_train_acc_mean': float(np.mean(buf.meta['train_acc'][-1])),
      'hardware': machine.hardware(),
      'jax': jax.__version__,
  }
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  with open(a.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
