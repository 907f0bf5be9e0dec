"""snnflow: the CSNN-on-N-MNIST vs CNN-on-MNIST study, as importable logic.

Importing the package must stay cheap (the Snakefile imports it to validate the
config), so nothing here pulls in torch, h5py or pandas.
"""

__version__ = "0.1.0"

# What a training run writes to results/runs/<model>/seed<S>/: one row per epoch in
# metrics.csv; one row per epoch and layer in layers.csv (test set: spikes per neuron per
# time step, synaptic operations and multiply-accumulates per sample); the final model's
# test-set predictions in predictions.csv.
METRICS_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
                   "train_seconds", "test_seconds"]
LAYER_COLUMNS = ["epoch", "layer", "neurons", "firing_rate", "synaptic_ops", "macs"]
LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2")  # both networks' layers with synapses
PREDICTION_COLUMNS = ["index", "label", "prediction"]


class SnnflowError(Exception):
    """A problem with the user's input: the message is one line that names the
    file or config key and says what to do. Entry scripts print it and exit 1."""


def first_line(err, limit=200):
    """The first line of an exception's message, for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else "no message"
