"""The chat side: conversation layer, transports, delivery, scheduling and the command line."""
