"""Shared plumbing every Lectern package may use: settings, errors, object store, event bus, HTTP basics."""
