"""Authentication: passwords, tokens, the current principal, session checks."""
