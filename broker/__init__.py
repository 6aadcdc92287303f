"""How driftloop reaches Kafka: connection settings, topic names, and a local broker."""
