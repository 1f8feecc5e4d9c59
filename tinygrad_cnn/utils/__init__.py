"""Utilities laid out as in PyTorch: :mod:`tinygrad_cnn.utils.data` holds the data-loading pieces."""
