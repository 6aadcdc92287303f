"""The demo: the whole loop on this machine with one command, narrated."""
