"""The Telegram transport: python-telegram-bot, long polling, on the neutral conversation layer."""
