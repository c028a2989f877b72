"""The one exception type the command line turns into a clean message, and one-line warnings."""

import sys


class SuiteError(Exception):
    """A problem the user can fix: bad input, missing data, a corrupt file.

    The command line prints ``error: <message>`` and exits with status 2,
    without a traceback. The message says what is wrong and how to fix it.
    """


_OS_HINTS = {
    "ENOTDIR": "a file stands where a folder is needed: move it or choose another folder",
    "EEXIST": "a file stands where a folder is needed: move it or choose another folder",
    "EROFS": "the file system is read-only: choose a writable folder",
    "EACCES": "no permission to write there: choose a writable folder",
    "EPERM": "no permission to write there: choose a writable folder",
    "ENOENT": "the folder cannot be created there: choose another folder",
    "ENOSPC": "the disk is full: free space, then rerun the same command to resume",
    "EDQUOT": "the disk quota is used up: free space, then rerun the same command to resume",
}


def os_error_in(err: BaseException | None) -> OSError | None:
    """The first OSError in an exception's chain (itself, its cause, or the error it was raised
    while handling, unless that was suppressed with ``from None``), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ if err.__cause__ is not None else None if err.__suppress_context__ else err.__context__
    return None


def error_line(err: BaseException) -> str:
    """An exception as the one line a record keeps: the operating-system error it comes from,
    where there is one (path, problem and what to do), else its type and message. A SuiteError
    keeps its own message: it says what went wrong already."""
    cause = None if isinstance(err, SuiteError) else os_error_in(err)
    if cause is not None:
        return f"{type(cause).__name__}: {os_error_line(cause)}"
    return f"{type(err).__name__}: {err}"


def os_error_line(err: OSError) -> str:
    """An operating-system error as one line: the path, the problem and what to do."""
    import errno

    name = errno.errorcode.get(err.errno or 0, "")
    where = f"{err.filename}: " if err.filename else ""
    hint = _OS_HINTS.get(name)
    return f"{where}{err.strerror or err}" + (f" ({hint})" if hint else "")


def warn(message: str) -> None:
    """A one-line warning on stderr (stdout may carry a table or CSV)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def unknown_name(what: str, name, known) -> SuiteError:
    """The error for a name that is not among ``known``: the closest known name, then all of them.

    ``raise unknown_name("method", "fastbat", METHODS)`` -> ``unknown method 'fastbat' (did you mean
    'fast_bat'?); choose one of: standard, fgsm, ...``.
    """
    import difflib

    known = [str(k) for k in known]
    hint = difflib.get_close_matches(str(name), known, n=1)
    return SuiteError(
        f"unknown {what} {name!r}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; choose one of: {', '.join(known)}"
    )
