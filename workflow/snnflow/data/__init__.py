"""Stage 1, the data: N-MNIST recordings and MNIST files in, HDF5 caches out.

nmnist (the .bin format and the recording folders), events (the event store), frames
(the frame caches), idx (MNIST's IDX files), mnist (the MNIST reader and image cache),
download, synthetic (an offline stand-in for both datasets), caches (checked reading of
the HDF5 files), parallel. Imports nothing from the later stages.
"""
