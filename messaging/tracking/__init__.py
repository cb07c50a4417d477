"""Links the platform puts in mail: one-click unsubscribe, the open pixel and click redirects.

Every link carries a token signed with the installation's secret key, so a link cannot be forged
or pointed elsewhere (no open redirect): the click target is inside the signed token.
"""
