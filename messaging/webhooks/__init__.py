"""Webhooks: endpoints, one delivery per (endpoint, event), and a row for each attempt."""
