"""Code shared by the OmniTensor backend and oracle node: contracts and their artifacts, chain access,
deployment manifest, blob store and settings."""

__version__ = "0.1.0"
