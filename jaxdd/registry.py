"""Names a config may use, mapped to the functions that build them.

A new method is a new entry here plus a config: the loop never branches on a name.
"""

from jaxdd.errors import ConfigError
from jaxdd.objectives.dc import make_dc
from jaxdd.objectives.dm import make_dm
from jaxdd.params.fred import make_fred
from jaxdd.params.pixels import make_pixels


def _pixels(config, num_classes, image_shape):
  p = config.parameterization
  return make_pixels(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                     init=p.get('init', 'real'), learn_labels=p.get('learn_labels', False))


def _fred(config, num_classes, image_shape):
  p = config.parameterization
  norm = p.get('dct_norm', 'ortho')
  # --config.parameterization.dct_norm=none on a command line arrives as a string.
  norm = None if isinstance(norm, str) and norm.lower() == 'none' else norm
  return make_fred(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                   msz=p.get('msz', 64), dct_norm=norm,
                   learn_labels=p.get('learn_labels', False))


PARAMETERIZATIONS = {'pixels': _pixels, 'fred': _fred}
OBJECTIVES = {'dm': make_dm, 'dc': make_dc}   # 'dc' is DSA with objective.dsa=True


def get_parameterization(config, num_classes, image_shape):
  name = config.parameterization.name
  if name not in PARAMETERIZATIONS:
    raise ConfigError(f'parameterization.name must be one of '
                      f'{", ".join(PARAMETERIZATIONS)}, got {name!r}')
  return PARAMETERIZATIONS[name](config, num_classes, image_shape)


def get_objective(config):
  name = config.objective.name
  if name not in OBJECTIVES:
    raise ConfigError(f'objective.name must be one of {", ".join(OBJECTIVES)}, '
                      f'got {name!r}')
  return OBJECTIVES[name](config)
