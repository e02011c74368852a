from .blresnet import bLResNet
from .csn import CSN

__all__ = ['bLResNet', 'CSN']
