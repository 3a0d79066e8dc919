"""The one exception type for bad input: the CLI turns it into a one-line message and exit code 2."""


class LatentAtlasError(ValueError):
    """Bad input from the user: a wrong name, a corrupt file, out-of-range data.

    It subclasses ``ValueError`` so that scikit-learn's conventions (``ValueError`` on bad input) hold.
    The message is one line that says what was wrong and what is allowed.
    """
