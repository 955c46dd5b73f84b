"""emgate: an emissions gateway for steel plants (async runtime)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emgate")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+src"
