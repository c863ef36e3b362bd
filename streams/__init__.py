"""Geo matching: visit ingestion and the faust matcher.

What others may use is exported here (``__all__``): the resolution of the archived visits' cells,
which the synthetic data and the notebooks share.
"""

from streams.repo import ARCHIVE_RESOLUTION

__all__ = ["ARCHIVE_RESOLUTION"]
