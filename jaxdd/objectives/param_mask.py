"""PAD's filtering of information embedding (FIEM) outside trajectory matching.

PAD (Li et al., appendix "Gradient Matching" / "Distribution Matching", Tables 6-7)
carries its parameter selection, "discarding a certain ratio of parameters in the
shallow layers", to DC and DM:

* DC: the gradient-matching distance is summed over the parameters that remain, i.e.
  the first ⌊α·P⌋ entries of the depth-ordered parameter vector (``models.depth_mask``,
  the same count as trajectory matching's ``mask_weights``) leave both gradients.
* DM: "we modify the implementation of the network such that outputs of each layer in
  the model are returned by the forward function. Then, we perform parameter selection
  following the same practice": the matched embedding becomes the concatenation of every
  block's output (depth order; ``features['layers']``), whose first ⌊α·D⌋ entries are
  dropped (``feature_mask``).

PAD does not publish this code; the entry-level masks are jaxdd's reading of it, chosen
to match the trajectory-matching mask exactly.

Config: ``objective.param_mask`` ('none' or 'depth') and ``objective.mask_ratio`` α in
[0, 1), the fields trajectory matching uses. DM's and DC's config NamedTuples declare
both fields and take their checks from ``CHECKS``.
"""

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from jaxdd.config_fields import fraction, one_of, plain, read_section

PARAM_MASKS = ('none', 'depth')


class ParamMaskConfig(NamedTuple):
  """The two fields of ``config.objective`` that turn PAD's mask on (DM, DC).

  Attributes:
    param_mask: 'none' (off) or 'depth' (drop the shallowest entries).
    mask_ratio: α in [0, 1), the dropped fraction of the depth-ordered entries.
  """
  param_mask: str = 'none'
  mask_ratio: float = 0.0


CHECKS = {'param_mask': one_of(PARAM_MASKS), 'mask_ratio': fraction()}


def parse(section: Mapping | None) -> ParamMaskConfig:
  """The mask's two fields of ``config.objective``, checked; the section's other
  fields belong to the objective that holds them and are left to it."""
  values = plain(section) if section is not None else {}
  return read_section(values, ParamMaskConfig, 'objective', CHECKS,
                      shared=set(values) - set(ParamMaskConfig._fields))


def depth_ratio(cfg) -> float | None:
  """α of a config with ``param_mask`` and ``mask_ratio`` fields, or None when off."""
  return float(cfg.mask_ratio) if cfg.param_mask == 'depth' else None


def mask_ratio(section: Mapping | None) -> float | None:
  """α of ``objective.{param_mask, mask_ratio}``, or None when selection is off.

  Raises:
    ConfigError: naming the field and the accepted values.
  """
  return depth_ratio(parse(section))


def feature_mask(layer_sizes, ratio: float) -> np.ndarray:
  """0/1 float32 [Σ sizes]: 0 on the first ⌊ratio·D⌋ entries of the depth-ordered
  concatenation of the layers' flattened outputs (DM under PAD's selection)."""
  total = int(sum(layer_sizes))
  return (np.arange(total) >= int(ratio * total)).astype(np.float32)
