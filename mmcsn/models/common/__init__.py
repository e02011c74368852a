from .tam import TemporalAggregation, default_offsets, temporal_aggregate

__all__ = ['TemporalAggregation', 'default_offsets', 'temporal_aggregate']
