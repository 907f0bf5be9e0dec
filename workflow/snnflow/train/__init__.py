"""Stage 3, training: the shared loop (prepare, resume, fit, write), data resident on
the device, checkpoints and GPU slots."""
