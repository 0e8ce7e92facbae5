"""Errors that jaxdd raises for bad user input, before any compilation.

Both are ``ValueError`` subclasses so callers that catch ``ValueError`` keep working;
the command-line entries catch them and print the one-line message without a traceback.
Also the type predicates the config checks share.
"""

import numpy as np


def is_int(v) -> bool:
  """True for a Python or numpy integer, False for bools (config-value checks)."""
  return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_num(v) -> bool:
  """True for a Python or numpy integer or float, False for bools."""
  return is_int(v) or isinstance(v, (float, np.floating))


class ConfigError(ValueError):
  """A configuration or command-line value is out of range or unknown.

  The message names the field and what is accepted.
  """


class DataError(ValueError):
  """A data set is malformed (rank, labels, class counts) or cannot be found.

  The message names the data set and the problem.
  """
