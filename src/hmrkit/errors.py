"""Errors a user can cause. Each message is one line naming the file and the problem."""


class InputError(ValueError):
    """A bad input file or argument: corrupt, unsupported, empty, unwritable, wrong model.

    ``str(err)`` is the one line shown to the user, e.g.
    ``photo.jpg: truncated JPEG data (the file ends early); re-export or re-download it``.
    """

    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NoPersonError(InputError):
    """No person was found where one was required."""
