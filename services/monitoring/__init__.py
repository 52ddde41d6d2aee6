"""Monitoring: GPU metric samples at fleet scale, and utilization questions over them."""
