"""Errors that jaxdd raises for bad user input, before any compilation.

Both are ``ValueError`` subclasses so callers that catch ``ValueError`` keep working;
the command-line entries catch them and print the one-line message without a traceback.
"""


class ConfigError(ValueError):
  """A configuration or command-line value is out of range or unknown.

  The message names the field and what is accepted.
  """


class DataError(ValueError):
  """A data set is malformed (rank, labels, class counts) or cannot be found.

  The message names the data set and the problem.
  """
