"""latentatlas: autoencoders whose latent space has a chosen geometry (plane, sphere), trained, evaluated and mapped."""

from ._version import __version__

__all__ = ["Autoencoder", "ColorBy", "__version__"]


def __getattr__(name: str):
    # Lazily (PEP 562): `latentatlas --help` and `latentatlas presets` must not pay for importing torch and
    # scikit-learn, which the estimator needs.
    if name == "Autoencoder":
        from .estimator import Autoencoder

        return Autoencoder
    if name == "ColorBy":  # what to colour maps by (viz/colour.py)
        from .viz.colour import ColorBy

        return ColorBy
    raise AttributeError(f"module 'latentatlas' has no attribute {name!r}")
