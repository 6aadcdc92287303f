"""Models for driftloop: train classifiers and keep them in a versioned registry."""
