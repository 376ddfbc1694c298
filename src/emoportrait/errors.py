"""User-facing errors.

Every problem a user can fix (a missing file, audio that is too short, no face in
view, ...) is raised as an :class:`EmoportraitError` whose message is one line that
names the file or value and says what to do. The CLI prints that line and exits
with status 2; anything else is a bug.
"""


class EmoportraitError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class InputError(EmoportraitError):
    """An input file or value is missing, unreadable or unsuitable."""


class NoFaceError(InputError):
    """No face could be found where one is needed."""
