"""The `vpt` command line."""
