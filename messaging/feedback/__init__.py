"""Feedback that arrives after delivery: bounces (DSN, RFC 3464) and complaints (ARF, RFC 5965).

`parse` turns inbound mail into reports, `services` records them on messages and suppressions,
`smtp` is the inbound SMTP handler that the `run_inbound_smtp` command serves.
"""
