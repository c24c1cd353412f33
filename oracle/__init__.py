"""The OmniTensor oracle node: watches the market for jobs, runs the models on the GPU (CPU when there is
none) and settles the jobs on-chain."""
