"""The Matrix transport (matrix-nio with end-to-end encryption)."""
