"""The `imagefleet` command, settings and the local fleet supervisor."""
