"""The drift timeline: timeline (the data), figure (PNG), page (HTML), render (both files)."""
