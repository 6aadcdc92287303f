"""The consumer: windows rows per partition, runs KSDrift per window, publishes drift events."""
