"""Networks that regress the parameter vector, their runtimes, and the weights files (load and save)."""
