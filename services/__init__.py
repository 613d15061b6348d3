"""The domain: requests, matching, offers, bookings, billing, the budget ledger. No chat library here."""
