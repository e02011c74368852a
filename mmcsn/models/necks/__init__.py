from .tam_neck import TAMNeck

__all__ = ['TAMNeck']
