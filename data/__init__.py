"""Data sets for driftloop: load a labelled CSV, write the bundled Iris."""
