"""Examples shipped with the package: ``python -m tinygrad_cnn.examples.mnist`` trains the MNIST CNN."""
