"""snnflow: the CSNN-on-N-MNIST vs CNN-on-MNIST study, as importable logic.

Importing the package must stay cheap (the Snakefile imports it to validate the
config), so nothing here pulls in torch, h5py or pandas.
"""

__version__ = "0.1.0"

class SnnflowError(Exception):
    """A problem with the user's input: the message is one line that names the
    file or config key and says what to do. Entry scripts print it and exit 1."""


def first_line(err, limit=200):
    """The first line of an exception's message, for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else "no message"
