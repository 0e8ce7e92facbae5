"""The one training core: every network that jaxdd trains goes through it.

The evaluation protocol (``jaxdd.evaluate``), the expert trajectories and the squeeze-
stage teachers (``jaxdd.pretrain``), the relabel protocol (``jaxdd.sre.relabel``) and the
inner loops of the objectives share one supervised step and its parts:

  * ``members``: the key of member ``i`` of a group of networks trained together,
    its ``init, data, aug`` streams, and running a function over the members
    (``vmap`` or a sequential ``lax.map``).
  * ``batches``: the order of an epoch's rows (a permutation per epoch, with the last
    batch wrapping around, masked, or smaller).
  * ``step``: one optimizer step of a network on a batch, batch-norm state included.
  * ``optim``: the optimizers and learning-rate schedules of the authors' PyTorch code
    (coupled weight decay, step decay, per-epoch cosine, multistep) and weight EMA.
  * ``losses``: the label losses (hard and soft cross-entropy, MSE, KL to a teacher,
    EDC's MSE + CE) and masked means.

Only the layers below import here (``jaxdd.models``, ``augment``, ``data``, ``errors``,
``config_fields``); nothing in this package knows a protocol's config.
"""
