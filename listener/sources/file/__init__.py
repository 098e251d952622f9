"""File import (JSON Lines, CSV): source (the collector: files, offsets, rejects), records (the field rules for one record)."""

from listener.sources.file.source import FileSource

__all__ = ["FileSource"]
