"""Real datasets: read from their source once, then kept in the store as shard sets.

Every trial and sampler reads the real data from the store, never from the source, so a
cluster needs the source only where the sweep starts.
"""

from harness.data.materialize import RealData, materialize
from harness.data.readers import Split, read_splits

__all__ = ["RealData", "Split", "materialize", "read_splits"]
