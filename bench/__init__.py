"""`make bench`: the PufferPost workloads measured beside their ceilings on this machine (see README.md)."""
