"""Policy and regulation change tracker."""

__version__ = "0.1.0"
