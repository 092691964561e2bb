"""What a user can cause, as one small hierarchy: the CLI prints a UserError as one `error:` line and exits 1;
anything else is a bug and shows its traceback. This module imports nothing.

UserError
  UsageError     a value typed on the command line or in the sidebar that cannot be used (also a ValueError)
  UnknownName    a network, recipe or other name that does not exist (also a KeyError)
  DataError      data.sources;  ImageError: data.images;  CheckpointError (HubError): store;
  TrainingError  store.runfolder;  EstimateError: training.estimate;  LoadError: perf.loadtest;
  MissingPackage unfamiliar.inputs
"""


class UserError(Exception):
    """Something the person running cifarnets can fix, said in one line that says how."""


class UsageError(UserError, ValueError):
    """A value the user gave that cannot be used: out of range, or not one of the choices."""


class UnknownName(UserError, KeyError):
    """A name that is not one of the known ones (a network's key, a recipe)."""

    def __str__(self) -> str:  # KeyError's own would quote the whole message
        return str(self.args[0]) if self.args else ""
