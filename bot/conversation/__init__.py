"""The platform-neutral conversation: events in, replies out; dialogs stored in the database."""
