"""Use cases, independent of the wire and of the database driver."""
