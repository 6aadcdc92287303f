"""The producer: replays a CSV's rows to Kafka as RowMessages, optionally noised."""
