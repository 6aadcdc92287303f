"""Late labels: the companion process that stores labels and joins them to archived rows."""
