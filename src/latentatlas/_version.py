"""The package's version, in a module of its own at the bottom: the files latentatlas writes record it, and
taking it from here rather than from the package root (whose lazy entry point imports the estimator) leaves the
import graph without a circle through the root."""

__version__ = "0.1.0"
