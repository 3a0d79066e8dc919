"""latentatlas: autoencoders whose latent space has a chosen geometry (plane, sphere), trained, evaluated and mapped."""

__version__ = "0.1.0"

from .estimator import Autoencoder  # noqa: E402

__all__ = ["Autoencoder", "__version__"]
