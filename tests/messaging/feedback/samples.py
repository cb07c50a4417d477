"""Realistic inbound mail, modelled on what Postfix, Exchange Online, qmail and Yahoo send.

Each builder takes the message id the report is about and returns raw bytes (CRLF line ends,
as they arrive over SMTP).
"""

from email.utils import format_datetime

from django.utils import timezone

from messaging.return_path import verp_local_part

FROM_DOMAIN = "mail.acme.test"


def verp(message_id: str) -> str:
    """The message's real (tagged) return path, as delivery writes it."""
    return f"{verp_local_part(message_id=message_id)}@{FROM_DOMAIN}"


def _now() -> str:
    return format_datetime(timezone.now())


def _crlf(text: str) -> bytes:
    return text.lstrip("\n").replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _original_headers(message_id: str, *, to: str = "jane@example.org", return_path: bool = True) -> str:
    lines = [f"Return-Path: <{verp(message_id)}>"] if return_path else []
    lines += [
        f"Received: from out1.{FROM_DOMAIN} (out1.{FROM_DOMAIN} [192.0.2.25])",
        "\tby mx.example.org (Postfix) with ESMTPS id 3F1C21A0",
        f"\tfor <{to}>; Tue,  9 Jun 2026 10:15:40 +0000 (UTC)",
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={FROM_DOMAIN}; s=mlr1;",
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==",
        f"From: Acme <news@{FROM_DOMAIN}>",
        f"To: {to}",
        "Subject: Your order is confirmed",
        "Date: Tue, 09 Jun 2026 10:15:33 +0000",
        f"Message-ID: <{message_id}@{FROM_DOMAIN}>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
    ]
    return "\n".join(lines)


def postfix_dsn(
    message_id: str,
    *,
    to: str = "jane@example.org",
    return_path: bool = True,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str | None = None,
) -> bytes:
    """Postfix's hard bounce: notification, message/delivery-status, text/rfc822-headers.

    `status` and `diagnostic` (the reply text after `smtp; `) make the other classes' reports."""
    if diagnostic is None:
        diagnostic = f"550 5.1.1 <{to}>: Recipient address rejected: User\n    unknown in local recipient table"
    boundary = "3F1C21A0.1717928141/mx.example.org"
    return _crlf(f"""
Return-Path: <>
Received: by mx.example.org (Postfix) id 3F1C21A0; Tue,  9 Jun 2026 10:15:41 +0000 (UTC)
Date: {_now()}
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp(message_id)}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Content-Transfer-Encoding: 8bit
Message-Id: <20260609101541.3F1C21A0@mx.example.org>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{to}>: host mx.example.org[192.0.2.1] said: 550 5.1.1
    <{to}>: Recipient address rejected: User unknown in local recipient
    table (in reply to RCPT TO command)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Postfix-Queue-ID: 3F1C21A0
X-Postfix-Sender: rfc822; {verp(message_id)}
Arrival-Date: Tue,  9 Jun 2026 10:15:40 +0000 (UTC)

Final-Recipient: rfc822; {to}
Original-Recipient: rfc822;{to}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

{_original_headers(message_id, to=to, return_path=return_path)}

--{boundary}--
""")


def postfix_delayed_dsn(
    message_id: str, *, to: str = "jane@example.org", recipients=None, report_id: str | None = None
) -> bytes:
    """Postfix's "delayed mail" warning: Action delayed, Status 4.4.1.

    `recipients` lists every per-recipient block's address (default: just `to`)."""
    boundary = "9B2E11C0.1717942541/mx.example.org"
    report_id = report_id or "<20260609141541.9B2E11C0@mx.example.org>"
    blocks = "\n".join(
        f"""Final-Recipient: rfc822; {address}
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx2.example.org[192.0.2.2]:25: Connection
    timed out
Will-Retry-Until: Sun, 14 Jun 2026 10:15:40 +0000 (UTC)
"""
        for address in (recipients if recipients is not None else [to])
    )
    return _crlf(f"""
Return-Path: <>
Date: {_now()}
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: {verp(message_id)}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Message-Id: {report_id}

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: Tue,  9 Jun 2026 10:15:40 +0000 (UTC)

{blocks}
--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original_headers(message_id, to=to)}

--{boundary}--
""")


def exchange_dsn(message_id: str, *, to: str = "john.doe@contoso.example") -> bytes:
    """Exchange Online's NDR: alternative text/html, delivery-status, the whole original as message/rfc822.

    The original's Message-ID comes back lowercased, as some gateways do.
    """
    outer, inner = "_004_BN8PR12MB3300AEF1", "_000_BN8PR12MB3300AEF1"
    lowered = message_id.lower()
    return _crlf(f"""
From: Microsoft Outlook <MAILER-DAEMON@BN8PR12MB3300.namprd12.prod.outlook.example>
To: <{verp(message_id)}>
Date: {_now()}
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{outer}"
Content-Language: en-US
Message-ID: <6a1f2d44-8c1e-4f6b-9a9c-1d2e3f4a5b6c@BN8PR12MB3300.namprd12.prod.outlook.example>
In-Reply-To: <{lowered}@{FROM_DOMAIN}>
Subject: Undeliverable: Your order is confirmed
Auto-Submitted: auto-replied
MIME-Version: 1.0

--{outer}
Content-Type: multipart/alternative; differences=Content-Type;
\tboundary="{inner}"

--{inner}
Content-Type: text/plain; charset="us-ascii"

Your message to {to} couldn't be delivered.
{to.split("@")[0]} wasn't found at contoso.example.

--{inner}
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message to {to} couldn't be delivered.</p></body></html>

--{inner}--

--{outer}
Content-Type: message/delivery-status

Reporting-MTA: dns;BN8PR12MB3300.namprd12.prod.outlook.example
Received-From-MTA: dns;out1.{FROM_DOMAIN}
Arrival-Date: Tue, 9 Jun 2026 10:15:40 +0000

Final-Recipient: rfc822;{to}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient
 {to} not found by SMTP address lookup
X-Display-Name: John Doe

--{outer}
Content-Type: message/rfc822

{_original_headers(lowered, to=to, return_path=False)}

Hello John, your order is confirmed.

--{outer}--
""")


def qmail_bounce(message_id: str, *, to: str = "jane@example.org") -> bytes:
    """A qmail "failure notice": no MIME structure at all, only flufl.bounce's heuristics find it."""
    return _crlf(f"""
Return-Path: <>
Date: {_now()}
From: MAILER-DAEMON@mail.example.net
To: {verp(message_id)}
Subject: failure notice
Message-ID: <20260609101541.12345.qmail@mail.example.net>

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{to}>:
192.0.2.7 does not like recipient.
Remote host said: 550 5.1.1 <{to}>... User unknown
Giving up on 192.0.2.7.

--- Below this line is a copy of the message.

{_original_headers(message_id, to=to)}

Hello Jane, your order is confirmed.
""")


def yahoo_arf(
    message_id: str, *, to: str = "jane@example.org", feedback_type: str = "abuse", mail_from: bool = True
) -> bytes:
    """A Yahoo/AOL-style feedback loop report: text, message/feedback-report, the original as message/rfc822."""
    boundary = "----=_Part_1234567_987654321.1717928141000"
    original_mail_from = f"Original-Mail-From: <{verp(message_id)}>\n" if mail_from else ""
    return _crlf(f"""
Return-Path: <>
From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.example>
To: fbl@{FROM_DOMAIN}
Date: {_now()}
Subject: FW: Your order is confirmed
Message-ID: <1717928141.1234567.1717928141000@arf.mail.yahoo.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP 192.0.2.25 on
Tue, 09 Jun 2026 10:15:40 +0000. For more information about this format please see
https://tools.ietf.org/html/rfc5965.

--{boundary}
Content-Type: message/feedback-report
Content-Transfer-Encoding: 7bit

Feedback-Type: {feedback_type}
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
{original_mail_from}Original-Rcpt-To: {to}
Arrival-Date: Tue, 09 Jun 2026 10:15:40 +0000
Reported-Domain: {FROM_DOMAIN}
Authentication-Results: mta1000.mail.yahoo.example; dkim=pass header.d={FROM_DOMAIN}
Source-IP: 192.0.2.25

--{boundary}
Content-Type: message/rfc822
Content-Disposition: inline

{_original_headers(message_id, to=to, return_path=False)}

Hello Jane, your order is confirmed.

--{boundary}--
""")


def plain_reply(message_id: str) -> bytes:
    """An ordinary reply sent to the return path: not a bounce, not a report."""
    return _crlf(f"""
From: Jane <jane@example.org>
To: {verp(message_id)}
Date: {_now()}
Subject: Re: Your order is confirmed
Message-ID: <reply-1@example.org>

Thanks, when will it ship?
""")
