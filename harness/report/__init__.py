"""Aggregation of a sweep's records into results files and a report of where generators fail."""

from harness.report.aggregate import summarize, write_report

__all__ = ["summarize", "write_report"]
