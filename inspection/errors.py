"""Errors of the inspection core, and the set of errors that end a command with one sentence.

`camera` and `models` sit below `inspection` and may not import it, so their errors have roots of
their own; `USER_ERRORS` names all three roots for the entry points to catch.
"""

from __future__ import annotations

from camera.errors import CameraError
from models.errors import ModelError


class InspectionError(Exception):
    """Something the operator or engineer can fix; the message is one sentence."""


class ConfigError(InspectionError):
    """A config or recipe file is missing, malformed, or has an unknown key or a bad value."""


class StoreError(InspectionError):
    """The database or image folder cannot be opened, written or locked."""


class AuthError(InspectionError):
    """A login, a password or an account change is refused (never saying whether the name or the password was wrong)."""


class PermissionDenied(InspectionError):
    """A user's role does not allow what they asked for (or the account was disabled or removed)."""


USER_ERRORS: tuple[type[Exception], ...] = (InspectionError, CameraError, ModelError)
