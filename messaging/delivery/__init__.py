"""Delivery: render, build MIME, DKIM-sign and hand each message to SMTP."""
