"""The one base class of user errors.

Every error caused by what the user gave — a model file, graph inputs, a hardware config, a
command-line option, a store on disk — derives from :class:`UserError`. The command line prints
such an error as one line ``accelsim <command>: error: <message>`` (exit status 2). Any other
exception is a bug in accelsim and is shown with its traceback.

Subclasses keep ``ValueError`` as a second base where they always had it, so callers that catch
``ValueError`` keep working.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad user input; the message is one line saying what and where."""


class InputWarning(UserWarning):
    """Input that is accepted but probably not what was meant (NaN/Inf values, ...). The
    command line prints it once as one line ``accelsim <command>: warning: <message>``."""
