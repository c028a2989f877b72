"""The one exception type the command line turns into a clean message."""


class SuiteError(Exception):
    """A problem the user can fix: bad input, missing data, a corrupt file.

    The command line prints ``error: <message>`` and exits with status 2,
    without a traceback. The message says what is wrong and how to fix it.
    """
