"""Names a config may use, mapped to the functions that build them.

A new method is a new entry here plus a config: the loop never branches on a name.
"""

from jaxdd.errors import ConfigError
from jaxdd.objectives.dm import make_dm
from jaxdd.params.pixels import make_pixels


def _pixels(config, num_classes, image_shape):
  p = config.parameterization
  return make_pixels(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                     init=p.get('init', 'real'), learn_labels=p.get('learn_labels', False))


PARAMETERIZATIONS = {'pixels': _pixels}
OBJECTIVES = {'dm': make_dm}


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
