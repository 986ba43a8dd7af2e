"""A run's records as views: results files, the report, comparisons of cells, the store's leaderboard."""

from harness.report.aggregate import summarize
from harness.report.runs import build_report, write_leaderboard, write_report

__all__ = ["build_report", "summarize", "write_leaderboard", "write_report"]
