"""The rules and transactions of authserver. Every front door (console, API, CLI) calls these."""
