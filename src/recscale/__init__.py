"""recscale: large sequential recommendation models and their scaling laws."""

from recscale.errors import RecscaleError

__all__ = ["RecscaleError"]
__version__ = "0.1.0"
