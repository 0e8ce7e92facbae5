"""Distribution Matching (DM; Zhao & Bilen, WACV 2023; `DCrepo:main_DM.py`).

Each iteration draws a freshly initialised network ψ, frozen, and matches per class the
mean embedding of real and synthetic images under the same Siamese DSA transform:

    L = Σ_c ‖ mean_i ψ(A_ω_c(x^real_{c,i})) − mean_j ψ(A_ω_c(x^syn_{c,j})) ‖²

(Eq. 4 of the paper, with the empirical MMD of a linear kernel on embeddings). Real
embeddings are constants; the gradient reaches only the synthetic images. As in the
reference, every class draws its own augmentation, shared by its real and synthetic
images, and the network runs in training mode (batch statistics for BN nets, computed
per class and separately for real and synthetic images, as DCrepo's separate calls do).

The synthetic set must be class-major with the same number of images per class (the
pixel and FreD parameterizations are); DM reads the classes from that order.
"""

import jax
import jax.numpy as jnp

from jaxdd import augment
from jaxdd import models as models_lib
from jaxdd.interfaces import Objective


def make_dm(config) -> Objective:
  """DM objective. Reads ``config.objective.{dsa, dsa_strategy}`` and ``config.model``."""
  obj_cfg = config.objective
  use_dsa = bool(obj_cfg.get('dsa', True))
  strategy = obj_cfg.get('dsa_strategy', augment.DEFAULT_STRATEGY)
  if use_dsa:
    augment.parse_strategy(strategy)

  def prepare(ds, config):
    image_shape = tuple(ds.x_train.shape[1:])
    model = models_lib.get_model(
        config.model.name, ds.num_classes, image_shape=image_shape,
        **{k: v for k, v in config.model.items() if k != 'name'})
    return {'model': model, 'image_shape': image_shape}

  def loss(syn, real, key, ctx, step):
    del step
    model, image_shape = ctx['model'], ctx['image_shape']
    num_classes, per_class = real.images.shape[:2]
    syn_images = syn.images.reshape((num_classes, -1) + syn.images.shape[1:])
    net_key, aug_key = jax.random.split(key)
    variables = models_lib.init_model(model, net_key, image_shape)

    def class_embeddings(class_key, real_c, syn_c):
      if use_dsa:
        # One key, same transform for the real and the synthetic images of the class.
        real_c = augment.dsa(class_key, real_c, strategy=strategy, siamese=True)
        syn_c = augment.dsa(class_key, syn_c, strategy=strategy, siamese=True)
      embed = lambda x: models_lib.apply_model(
          model, variables, x, train=True, features=True)[0][1]['embedding']
      return jax.lax.stop_gradient(embed(real_c)).mean(0), embed(syn_c).mean(0)

    class_keys = jax.random.split(aug_key, num_classes)
    mean_real, mean_syn = jax.vmap(class_embeddings)(class_keys, real.images, syn_images)
    value = jnp.sum((mean_real - mean_syn) ** 2)
    return value, {'dm': value}

  return Objective(prepare, loss)
