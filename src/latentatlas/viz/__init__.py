"""Pictures of runs: figures (plots), the HTML report, the live explorer page and TensorBoard logging."""
