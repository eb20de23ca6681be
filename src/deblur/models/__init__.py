"""Plain ``nn.Module`` networks and their building blocks (no Lightning below this package)."""

from deblur.models.fddn import FDDN
from deblur.models.msfs_net import MSFSNet
from deblur.models.nafnet import NAFNet

__all__ = ["FDDN", "MSFSNet", "NAFNet"]
