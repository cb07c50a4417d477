"""Descriptions and real examples for the published schema, in one place.

`pufferpost.openapi.add_examples` (a postprocessing hook) fills every property, parameter, header
and error answer from these tables (a property missing here whose schema is another component, or
a list of one, gets that component's example, composed from its own properties), so `/docs/` never shows a generated placeholder ("string",
0, "additionalProp1", "2019-08-24…"). A description written on the serializer (`help_text`)
wins over the one here. Keys are `"Schema.property"` or, for what means the same everywhere,
the bare property name. tests/api/test_schema.py fails on anything left without one.

The values follow the guides' own example (Acme, `mail.acme.com`, Jane's order o_9).
"""

WHEN = "2026-06-09T10:15:30+00:00"
LATER = "2026-06-09T10:15:41+00:00"
MSG = "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2"
EVT = "evt_01J9Z2K3M4N5P6Q7R8S9T0V1Y4"
DOM = "dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC"
SND = "snd_01J9Z4P2C8H3M0K7V5XB9R2TFE"
TPL = "tpl_01J9Y0AA11BB22CC33DD44EE55"
GRP = "grp_01J9Z5R8T2W4Y6A8C0E2G4J6M8"
WHK = "whk_01J9Z6B3D5F7H9K1M3P5R7T9V1"
WSP = "wsp_01J9Z0A1B2C3D4E5F6G7H8J9K0"
REQ = "req_01J9Z2K3M4N5P6Q7R8S9T0V1X3"
CURSOR = "eyJpZCI6Im1zZ18wMUo5WjJLM000TjVQNlE3UjhTOVQwVjFXMiJ9"
DKIM_VALUE = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu5Fz…"

# Built from the component the property names (or lists): a whole object, always in step with it.
COMPOSED = object()

# (description, example) per property.
PROPERTIES: dict[str, tuple[str, object]] = {
    "data": ("The rows of this page.", COMPOSED),
    # Shared names.
    "created_at": ("When it was created (ISO 8601, UTC).", "2026-06-09T10:15:00+00:00"),
    "updated_at": ("When it last changed (ISO 8601, UTC).", LATER),
    "next_cursor": ("Pass as `?cursor=` for the next page; null on the last page.", CURSOR),
    "locale": ("A BCP 47 locale tag, e.g. `de` or `pt-BR`.", "de"),
    "timezone": ("An IANA time zone for dates in the rendered text.", "Europe/Berlin"),
    "email": ("An email address (lowercased).", "jane@example.com"),
    "subject": ("The subject line.", "Your order o_9 is confirmed"),
    "html": ("The HTML body.", "<p>Hi Jane, your order o_9 is on its way.</p>"),
    "text": ("The plain-text body.", "Hi Jane, your order o_9 is on its way."),
    "version": ("The template version number (1, 2, …).", 3),
    "Send.data": ("Render variables for the template.", {"name": "Jane", "order_id": "o_9", "total": "42.00"}),
    "MessageView.data": ("The render variables of the send.", {"name": "Jane", "order_id": "o_9", "total": "42.00"}),
    "metadata": (
        "Your own keys and values (up to 50; values ≤ 500 characters), echoed on reads and webhooks.",
        {
            "order_id": "o_9",
            "user_id": "123",
        },
    ),
    "cc": ("Carbon-copy recipients (up to 25).", ["audit@acme.com"]),
    "template_id": ("The `tpl_…` template.", TPL),
    "filename": ("The file name, at most 255 characters, without path separators.", "receipt.pdf"),
    "content_type": ("The MIME type.", "application/pdf"),
    "purpose": ("What the record is for: `DKIM` (the gate), `SPF`, `DMARC` or `RETURN_PATH` (MX).", "DKIM"),
    "type": ("The DNS record type.", "TXT"),
    "host": ("The DNS name to publish the record at.", "mlr1._domainkey.mail.acme.com"),
    "value": ("The record's value, exactly as to publish it.", DKIM_VALUE),
    "name": ("A name for people.", "Order confirmation"),
    "slug": ("The URL-safe name, unique in the workspace (derived from the name when omitted).", "order-confirmation"),
    "strictVariables": (
        "When true, a send or preview whose `data` lacks a variable the template uses is refused.",
        True,
    ),
    "translations": (
        "Per-locale subject, HTML and text, keyed by locale tag.",
        {"de": {"subject": "Bestellung o_9 bestätigt", "html": "<p>Hallo Jane!</p>", "text": "Hallo Jane!"}},
    ),
    "missing_variables": ("Variables the template uses that `data` lacks (rendered empty unless strict).", ["total"]),
    "detail": (
        "Machine-readable details of what happened.",
        {"class": "hard", "status": "5.1.1", "reply": "550 5.1.1 No such user"},
    ),
    # Send (camelCase: exactly the guide's field names).
    "Send.from": ("The from-address: an active sender on a verified domain of the workspace.", "no-reply@acme.com"),
    "Send.to": ("The one primary recipient.", "jane@example.com"),
    "Send.templateId": ("The stable `tpl_…` id; takes precedence over `template`.", TPL),
    "Send.template": ("The template's slug (when `templateId` is not given).", "order-confirmation"),
    "Send.replyTo": ("The Reply-To address.", "support@acme.com"),
    "Send.unsubscribeGroup": ("The `grp_…` subscription topic; recipients who left it are refused.", GRP),
    "Send.attachments": (
        "Up to 3 small files (about 1 MB each), base64.",
        [{"filename": "receipt.pdf", "contentType": "application/pdf", "content": "JVBERi0xLjQKJcOkw7zDtsOf"}],
    ),
    "Attachment.contentType": ("The MIME type; `message/*` and `multipart/*` are refused.", "application/pdf"),
    "Attachment.content": ("The file's bytes, base64-encoded.", "JVBERi0xLjQKJcOkw7zDtsOf"),
    "AttachmentView.content_type": ("The MIME type (the content itself is never echoed).", "application/pdf"),
    "BatchRequest.messages": (
        "Up to 100 sends, each the shape of `POST /v1/messages`.",
        [
            {
                "from": "no-reply@acme.com",
                "to": "jane@example.com",
                "template": "order-confirmation",
                "data": {"name": "Jane"},
            },
            {
                "from": "no-reply@acme.com",
                "to": "blocked@example.com",
                "template": "order-confirmation",
                "data": {"name": "Sam"},
            },
        ],
    ),
    "BatchResult.data": (
        "One result per item, in order.",
        [
            {"index": 0, "status": "accepted", "id": MSG},
            {
                "index": 1,
                "status": "error",
                "error": {
                    "code": "recipient_suppressed",
                    "message": '"blocked@example.com" is on the suppression list.',
                },
            },
        ],
    ),
    "BatchItemResult.index": ("The item's position in `messages` (from 0).", 1),
    "BatchItemResult.status": ("`accepted` (with `id`) or `error` (with `error`).", "accepted"),
    "BatchItemResult.id": ("The accepted item's `msg_…` id.", MSG),
    "BatchItemResult.error": (
        "Why the item was refused.",
        {"code": "recipient_suppressed", "message": '"blocked@example.com" is on the suppression list.'},
    ),
    "BatchItemError.code": ("The same code a single send would answer.", "recipient_suppressed"),
    "BatchItemError.message": ("Human-readable explanation.", '"blocked@example.com" is on the suppression list.'),
    "BatchItemError.violations": (
        "On `validation_failed`: each offending field of the item.",
        [{"field": "to", "code": "invalid_email", "message": "Enter a valid email address."}],
    ),
    "SendAccepted.id": ("The new message's `msg_…` id.", MSG),
    "SendAccepted.status": ("Always `accepted`: rendering and delivery happen on a worker.", "accepted"),
    # Messages.
    "MessageView.id": ("The `msg_…` id.", MSG),
    "MessageView.status": ("Where the message is in its lifecycle.", "delivered"),
    "MessageView.to": ("The primary recipient.", "jane@example.com"),
    "MessageView.from": ("The from-address.", "no-reply@acme.com"),
    "MessageView.reply_to": ("The Reply-To address, or null.", "support@acme.com"),
    "MessageView.attachments": (
        "The attachments by name and type (never their content).",
        [{"filename": "receipt.pdf", "content_type": "application/pdf"}],
    ),
    "MessageView.subject": ("The rendered subject (empty until rendered).", "Your order o_9 is confirmed"),
    "MessageView.template_name": ("The template's name at send time.", "Order confirmation"),
    "MessageView.template_version": ("The template version the message was pinned to.", 3),
    "MessageView.tags": ("Tags (reserved; empty today).", []),
    "MessageView.unsubscribe_group": ("The `grp_…` the send named, or null.", GRP),
    "MessageView.test": ("True for a message sent with a test key (`key_test_…`): simulated, never delivered.", False),
    "MessageContentView.id": ("The `msg_…` id.", MSG),
    "MessageContentView.subject": ("The subject as delivered.", "Your order o_9 is confirmed"),
    "MessageContentView.text": (
        "The text part as delivered (tracking links included).",
        "Hi Jane, your order o_9 is on its way.",
    ),
    "MessageContentView.html": (
        "The HTML part as delivered (tracking pixel and links included).",
        "<p>Hi Jane, your order o_9 is on its way.</p>",
    ),
    "MessageContentView.attachments": (
        "The attachments by name and type.",
        [{"filename": "receipt.pdf", "content_type": "application/pdf"}],
    ),
    "MessageContentView.built_at": ("When the delivery attempt built this content.", "2026-06-09T10:15:33+00:00"),
    "MessageEventView.id": ("The `evt_…` id (webhook receivers dedupe on it).", EVT),
    "MessageEventView.type": ("What happened.", "delivered"),
    "MessageEventView.occurred_at": ("When it happened, in the reporting system's time.", LATER),
    "MessageEventView.recorded_at": ("When PufferPost recorded it.", "2026-06-09T10:15:42+00:00"),
    "MessageEventView.detail": (
        "What the receiving side said (codes, reply, MTA), per event type.",
        {
            "reply": "250 2.0.0 OK queued as 4Y9",
            "mx": "mx1.example.com",
            "tls": True,
        },
    ),
    # Domains.
    "Domain.id": ("The `dom_…` id.", DOM),
    "Domain.domain": ("The sending domain, lowercased.", "mail.acme.com"),
    "Domain.verified": ("True once DKIM verifies: the one signal that the domain may send.", True),
    "Domain.dkim_status": ("`pending`, `verified` or `failed`.", "verified"),
    "Domain.dmarc_status": ("`unknown`, `present` or `missing` (advisory only).", "present"),
    "Domain.dkim_error": (
        "Why the last DKIM check failed, or empty.",
        "TXT record at mlr1._domainkey.mail.acme.com has a different public key",
    ),
    "Domain.dmarc_error": ("Why the DMARC check failed, or empty.", "No TXT record at _dmarc.mail.acme.com"),
    "Domain.dns_records": (
        "The records to publish (the DKIM one appears once the key is issued).",
        [{"purpose": "DKIM", "type": "TXT", "host": "mlr1._domainkey.mail.acme.com", "value": DKIM_VALUE}],
    ),
    "Domain.return_path_host": ("The custom MAIL FROM host, `bounces.<domain>`.", "bounces.mail.acme.com"),
    "Domain.return_path_status": ("`pending`, `verified` or `failed` (advisory: never blocks a send).", "verified"),
    "Domain.return_path_error": (
        "Why the return path failed, or empty.",
        "MX at bounces.mail.acme.com names mx.other.net, not inbound.mail.operator.net",
    ),
    "Domain.bounce_domain": ("The envelope domain delivery uses now.", "bounces.mail.acme.com"),
    "Domain.bounce_warning": (
        "Set when later bounces cannot come back; empty otherwise.",
        "Bounces after acceptance go to mail.acme.com's own MX.",
    ),
    "Domain.record_checks": ("The DNS doctor: one verdict per record from the last check.", COMPOSED),
    "Domain.authentication": ("DMARC, DKIM and SPF alignment and the big receivers' verdicts (advisory).", COMPOSED),
    "Domain.last_checked_at": ("When DNS was last checked, or null.", LATER),
    "DomainCreate.domain": ("A fully qualified domain name (lowercased and trimmed).", "mail.acme.com"),
    "DnsRecord.purpose": ("`DKIM` (the gate), `SPF`, `DMARC` or `RETURN_PATH`.", "DKIM"),
    "DnsRecord.type": ("`TXT` or `MX`.", "TXT"),
    "DnsRecord.priority": ("The MX preference (MX records only).", 10),
    "DnsRecord.state": ("For DKIM during a rotation: `active`, `pending` (publish it) or `retiring`.", "active"),
    "DnsRecord.keep_until": ("A retiring DKIM record may be removed after this time.", "2026-06-16T10:15:00+00:00"),
    "DnsRecord.note": (
        "Advice about the record, e.g. that the value exceeds 255 characters.",
        "The value is longer than 255 characters: most DNS providers split it for you.",
    ),
    "RecordCheck.purpose": ("Which record the verdict is about.", "DKIM"),
    "RecordCheck.type": ("`TXT` or `MX`.", "TXT"),
    "RecordCheck.host": ("Where the record was looked up.", "mlr1._domainkey.mail.acme.com"),
    "RecordCheck.status": ("`ok`, `warning`, `missing`, `wrong`, `unreachable` or `pending`.", "wrong"),
    "RecordCheck.problem": ("A stable code for the problem (empty when ok).", "key_mismatch"),
    "RecordCheck.message": (
        "What to do, in a sentence.",
        "The published key is not this domain's key: publish the value shown.",
    ),
    "RecordCheck.expected": ("The value that should be published.", DKIM_VALUE),
    "RecordCheck.found": ("What DNS answered.", ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx9…"]),
    "Authentication.dmarc_policy": ("The DMARC policy in force, parsed.", {"p": "none", "pct": 100}),
    "Authentication.dkim_aligned": ("Whether the DKIM signing domain aligns with the From domain.", True),
    "Authentication.dkim_alignment": ("DKIM alignment mode from the policy (`adkim`).", "relaxed"),
    "Authentication.spf_domain": ("The domain SPF is evaluated for (the envelope domain).", "bounces.mail.acme.com"),
    "Authentication.spf_passes": ("Whether SPF passes for the egress addresses.", True),
    "Authentication.spf_aligned": ("Whether the SPF domain aligns with the From domain.", True),
    "Authentication.spf_alignment": ("SPF alignment mode from the policy (`aspf`).", "relaxed"),
    "Authentication.dmarc_passes": ("Whether mail would pass DMARC (aligned DKIM or SPF).", True),
    "Authentication.receivers": ("Verdicts against receivers' published sender rules.", COMPOSED),
    "DmarcPolicy.p": ("The policy (`none`, `quarantine`, `reject`).", "none"),
    "DmarcPolicy.sp": ("The subdomain policy, or null.", "quarantine"),
    "DmarcPolicy.pct": ("The percentage of mail the policy applies to.", 100),
    "DmarcPolicy.rua": ("Aggregate report addresses.", ["mailto:dmarc@acme.com"]),
    "DmarcPolicy.adkim": ("DKIM alignment: `r` relaxed, `s` strict.", "r"),
    "DmarcPolicy.aspf": ("SPF alignment: `r` relaxed, `s` strict.", "r"),
    "DmarcPolicy.inherited_from": (
        "The organizational domain the policy came from, when not the domain's own.",
        "acme.com",
    ),
    "ReceiverVerdict.receiver": ("Whose rules: `gmail_yahoo_2024` or `microsoft_2025`.", "gmail_yahoo_2024"),
    "ReceiverVerdict.verdict": ("`meets` or `misses`.", "misses"),
    "ReceiverVerdict.missing": ("What is missing to meet them.", ["dmarc"]),
    "ReceiverVerdict.note": ("The verdict in a sentence.", "Publish a DMARC record at _dmarc.mail.acme.com."),
    # Senders.
    "Sender.id": ("The `snd_…` id.", SND),
    "Sender.workspace_id": ("The `wsp_…` workspace.", WSP),
    "Sender.from_address": ("The exact from-address, lowercased.", "receipts@mail.acme.com"),
    "Sender.display_name": ("The display name in the From header, or null.", "Acme Receipts"),
    "Sender.state": ("`under_review`, `active` (the only state that sends) or `paused`.", "under_review"),
    "Sender.state_reason": ("Why the sender is in its state.", "Awaiting review."),
    "SenderCreate.fromAddress": ("A valid email address; normalized to lowercase.", "receipts@mail.acme.com"),
    "SenderCreate.displayName": ("Up to 255 characters; may be omitted or null.", "Acme Receipts"),
    # Templates.
    "Template.id": ("The `tpl_…` id.", TPL),
    "Template.latest_version": ("The newest version number, or null before the first.", 3),
    "Template.strict_variables": ("Whether sends and previews must supply every variable.", False),
    "Template.archived": ("True once archived (DELETE): no new sends or versions.", False),
    "TemplateCreate.name": ("The template's name.", "Order confirmation"),
    "PatchedTemplateUpdate.name": ("A new name.", "Order confirmation (2026)"),
    "PatchedTemplateUpdate.slug": ("A new slug, unique in the workspace.", "order-confirmation-2026"),
    "Version.template_id": ("The `tpl_…` template.", TPL),
    "Version.version": ("The version number (immutable once saved).", 3),
    "Version.subject": ("The subject template (Jinja syntax).", "Order {{ order_id }} confirmed"),
    "Version.html": ("The HTML template.", '<p>Hi {{ name }}, your total is {{ total|currency("EUR") }}.</p>'),
    "Version.text": (
        "The text template (derived from the HTML when empty).",
        'Hi {{ name }}, your total is {{ total|currency("EUR") }}.',
    ),
    "VersionCreate.subject": ("The subject template (Jinja syntax).", "Order {{ order_id }} confirmed"),
    "VersionCreate.html": (
        "The HTML template (auto-escaped).",
        '<p>Hi {{ name }}, your total is {{ total|currency("EUR") }}.</p>',
    ),
    "VersionCreate.text": (
        "The text template; omitted: derived from the HTML.",
        'Hi {{ name }}, your total is {{ total|currency("EUR") }}.',
    ),
    "Translation.subject": ("The subject in this locale.", "Bestellung {{ order_id }} bestätigt"),
    "Translation.html": ("The HTML in this locale.", "<p>Hallo {{ name }}!</p>"),
    "Translation.text": ("The text in this locale.", "Hallo {{ name }}!"),
    "Render.data": ("Variables to render with.", {"name": "Jane", "order_id": "o_9", "total": 42}),
    "Render.locale": ("The locale to render in (default: the workspace's).", "de"),
    "Render.timezone": ("The IANA zone for dates (default UTC).", "Europe/Berlin"),
    "Render.version": ("The version to render (default: the latest).", 3),
    "Rendered.subject": ("The rendered subject.", "Bestellung o_9 bestätigt"),
    "Rendered.html": ("The rendered HTML.", "<p>Hallo Jane, Summe 42,00 €.</p>"),
    "Rendered.text": ("The rendered text.", "Hallo Jane, Summe 42,00 €."),
    "Rendered.version": ("The version rendered.", 3),
    "Rendered.locale": ("The locale rendered in.", "de"),
    # Suppressions and unsubscribes.
    "SuppressionCreate.email": ("The address to suppress.", "jane@example.com"),
    "SuppressionCreate.reason": ("Only `manual` can be set by hand.", "manual"),
    "SuppressionView.email": ("The suppressed address.", "jane@example.com"),
    "SuppressionView.reason": ("`bounce`, `complaint`, `unsubscribe` or `manual`.", "bounce"),
    "SuppressionView.source_message_id": ("The `msg_…` that caused it, or null.", MSG),
    "SuppressionView.detail": (
        "For a bounce: its class, codes and diagnostic.",
        {"class": "hard", "status": "5.1.1", "diagnostic": "550 5.1.1 No such user"},
    ),
    "SuppressionView.why": ("Why the address is suppressed, in a sentence.", "A hard bounce: 550 5.1.1 No such user."),
    "SuppressionView.remove": ("How to let mail reach it again.", "DELETE /v1/suppressions/jane@example.com"),
    "UnsubscribeCreate.email": ("The address that leaves the group.", "jane@example.com"),
    "UnsubscribeGroupCreate.name": ("The topic's name.", "Receipts"),
    "UnsubscribeGroupCreate.description": ("What the topic covers.", "Order and payment receipts"),
    "UnsubscribeGroupView.id": ("The `grp_…` id.", GRP),
    "UnsubscribeGroupView.name": ("The topic's name.", "Receipts"),
    "UnsubscribeGroupView.description": ("What the topic covers.", "Order and payment receipts"),
    "UnsubscribeView.group_id": ("The `grp_…` group.", GRP),
    # Webhooks.
    "Webhook.id": ("The `whk_…` id.", WHK),
    "Webhook.url": ("Where deliveries are POSTed (https in production).", "https://hooks.acme.com/pufferpost"),
    "Webhook.events": ("The event types sent to it (empty: all).", ["delivered", "bounced", "complained"]),
    "WebhookCreate.url": (
        "An https URL that is not private, loopback or link-local.",
        "https://hooks.acme.com/pufferpost",
    ),
    "WebhookCreate.events": (
        "Event types to receive; omitted or empty: every type.",
        ["delivered", "bounced", "complained"],
    ),
    "WebhookCreated.id": ("The `whk_…` id.", WHK),
    "WebhookCreated.url": ("Where deliveries are POSTed.", "https://hooks.acme.com/pufferpost"),
    "WebhookCreated.events": ("The event types sent to it (empty: all).", ["delivered", "bounced"]),
    "WebhookCreated.secret": (
        "The signing secret of `PufferPost-Signature`, shown this once.",
        "whsec_J3q9vX2mA7LkP0sR5tY8uW1zC4eG6iH",
    ),
    "WebhookDelivery.event_id": ("The `evt_…` event delivered.", EVT),
    "WebhookDelivery.event_type": ("The event's type.", "delivered"),
    "WebhookDelivery.status": ("`pending`, `succeeded` or `failed`.", "succeeded"),
    "WebhookDelivery.attempt_count": ("Attempts so far.", 1),
    "WebhookDelivery.next_attempt_at": ("When the next attempt is due, or null when finished.", None),
    "WebhookDelivery.last_response_status": ("The receiver's last HTTP status, or null.", 200),
    "WebhookDelivery.payload": (
        "The JSON body that is POSTed.",
        {"id": EVT, "type": "delivered", "occurred_at": LATER, "test": False, "message": {"id": MSG}},
    ),
    "WebhookDelivery.attempts": ("Every attempt, oldest first.", COMPOSED),
    "WebhookAttempt.started_at": ("When the attempt started.", LATER),
    "WebhookAttempt.duration_ms": ("How long it took.", 84),
    "WebhookAttempt.response_status": ("The receiver's HTTP status, or null when none came.", 200),
    "WebhookAttempt.response_body": ("The start of the receiver's answer (1 KB).", "ok"),
    "WebhookAttempt.error": ("Why the attempt failed, or empty.", "HTTP 503"),
    # Workspace.
    "Workspace.id": ("The `wsp_…` id.", WSP),
    "Workspace.name": ("The workspace's name.", "Acme"),
    "Workspace.default_locale": ("The locale of sends that name none.", "en"),
    "Workspace.sending_paused": ("True while staff have paused sending (sends get 403 `sending_paused`).", False),
    "Workspace.monthly_quota": ("Messages allowed per calendar month (UTC).", 1000000),
    "Workspace.monthly_quota_used": ("Messages counted this month.", 1234),
    "Workspace.rate_limit_per_minute": ("Send requests allowed a minute (a batch counts as one).", 600),
    "Workspace.open_tracking": ("Whether opens are tracked (pixel).", False),
    "Workspace.click_tracking": ("Whether clicks are tracked (signed redirects).", False),
    # The error envelope.
    "Error.error": ("The error: code, message, request id and, on 422, violations.", COMPOSED),
    "ErrorBody.code": ("Stable machine-readable code.", "domain_not_found"),
    "ErrorBody.message": ("Human-readable explanation.", "No such domain."),
    "ErrorBody.request_id": ("`req_…`, the same as the `X-Request-Id` header.", REQ),
    "ErrorBody.violations": (
        "On 422: each offending field.",
        [{"field": "cc[3]", "code": "invalid_email", "message": "Enter a valid email address."}],
    ),
    "ErrorBody.reason": ("Why, when the code alone does not say.", "sender_under_review"),
    "ErrorBody.detail": (
        "What to do about it.",
        "Staff review new senders; the state changes to active once approved.",
    ),
    "ErrorBody.missing_variables": ("On `template_variables_missing`.", ["total"]),
    "Violation.field": ("The offending field (null: the whole body).", "cc[3]"),
    "Violation.code": ("Why: `invalid_email`, `required`, `unknown_field`, …", "invalid_email"),
    "Violation.message": ("Human-readable explanation.", "Enter a valid email address."),
}

ENUMS: dict[str, str] = {
    "AlignmentModeEnum": "DMARC alignment mode.",
    "AlignmentTagEnum": "DMARC alignment tag: `r` relaxed, `s` strict.",
    "BatchItemResultStatusEnum": "Whether the batch item was accepted.",
    "DmarcStatusEnum": "Whether a DMARC record was found (advisory).",
    "DnsRecordStateEnum": "A DKIM record's place in a key rotation.",
    "DnsRecordTypeEnum": "The DNS record type.",
    "EventsEnum": "An event type a webhook endpoint can subscribe to.",
    "MessageEventViewTypeEnum": "A timeline event type.",
    "MessageViewStatusEnum": "A message's lifecycle status.",
    "PurposeEnum": "What a DNS record is for.",
    "ReceiverEnum": "A mailbox provider whose sender rules are checked.",
    "RecordCheckStatusEnum": "The DNS doctor's verdict for one record.",
    "SendAcceptedStatusEnum": "The status of an accepted send.",
    "SenderStateEnum": "A sender's review state.",
    "SuppressionCreateReasonEnum": "The reason of a suppression added by hand.",
    "SuppressionViewReasonEnum": "Why an address is suppressed.",
    "VerdictEnum": "Whether the domain meets a receiver's rules.",
    "VerificationStatusEnum": "A DNS verification status.",
}

# Parameters: (in, name) → example; path ids by the path's resource.
PARAMETERS: dict[tuple[str, str], object] = {
    ("query", "limit"): 25,
    ("query", "cursor"): CURSOR,
    ("query", "status"): "bounced",
    ("query", "recipient"): "jane@example.com",
    ("query", "from"): "no-reply@acme.com",
    ("query", "templateId"): TPL,
    ("query", "createdAfter"): "2026-06-01T00:00:00+00:00",
    ("query", "createdBefore"): "2026-07-01T00:00:00+00:00",
    ("query", "include_archived"): True,
    ("header", "Idempotency-Key"): "order-9-confirmation",
    ("path", "email"): "jane@example.com",
    ("path", "number"): 3,
}
PATH_IDS = {
    "domains": DOM,
    "senders": SND,
    "templates": TPL,
    "messages": MSG,
    "unsubscribe-groups": GRP,
    "webhooks": WHK,
}
STATUS_PARAMETERS = {"/v1/webhooks/{id}/deliveries": "failed"}

HEADERS: dict[str, object] = {
    "X-Request-Id": REQ,
    "RateLimit-Limit": 600,
    "RateLimit-Remaining": 599,
    "RateLimit-Reset": 1749470460,
    "Retry-After": 17,
    "Idempotent-Replayed": "true",
}

# The message each error code answers with (as the server writes it, with the guide's names).
ERRORS: dict[str, str] = {
    "unauthorized": "A valid API key is required.",
    "missing_scope": 'This API key lacks the "messages:send" scope.',
    "not_acceptable": "This endpoint only answers with JSON.",
    "invalid_json": "The request body is not valid JSON.",
    "payload_too_large": "The request body exceeds 5242880 bytes.",
    "unsupported_media_type": "Send the request body as application/json.",
    "validation_failed": "The request is invalid.",
    "rate_limited": "Too many send requests; the limit is 600 a minute. Retry after the RateLimit-Reset time.",
    "quota_exceeded": "The monthly quota of 1000000 messages is used up.",
    "sending_paused": "Sending is paused for this workspace.",
    "idempotency_key_reused": "This Idempotency-Key was already used with a different request body.",
    "idempotency_key_in_use": "A request with this Idempotency-Key is still being processed; retry shortly.",
    "template_required": "Provide templateId or template.",
    "template_not_found": 'No template "order-confirmation" in this workspace.',
    "template_has_no_version": 'Template "order-confirmation" has no saved version to send. Save a version first.',
    "template_version_not_found": "The template has no such version.",
    "template_render_failed": "Line 1: unexpected '}'.",
    "template_variables_missing": "The template uses strict variables and data lacks: total.",
    "template_archived": "The template is archived; it takes no new versions.",
    "template_exists": 'A template with slug "order-confirmation" already exists.',
    "sender_not_available": 'No active sender for "receipts@mail.acme.com".',
    "sender_exists": 'A sender for "receipts@mail.acme.com" already exists.',
    "sender_limit_reached": "The workspace has reached its limit of 500 senders; delete one, or ask us to raise the limit.",
    "recipient_suppressed": '"jane@example.com" is on the suppression list.',
    "recipient_unsubscribed": f'"jane@example.com" has unsubscribed from group "{GRP}".',
    "unknown_unsubscribe_group": f'No unsubscribe group "{GRP}" in this workspace.',
    "content_not_available": "The message is accepted and has not been built for delivery yet; its content is "
    "available once a delivery attempt has rendered it.",
    "dkim_key_not_issued": "The domain's first signing key has not been issued yet; retry shortly.",
    "dkim_rotation_in_progress": "A rotation to selector mlr2 is waiting for its DNS record; publish it and refresh.",
    "domain_limit_reached": "The workspace has reached its limit of 100 domains; delete one, or ask us to raise the limit.",
    "domain_not_found": "No such domain.",
    "sender_not_found": "No such sender.",
    "template_not_found_404": "No such template.",
    "message_not_found": "No such message.",
    "suppression_not_found": "No such suppression.",
    "unsubscribe_group_not_found": "No such unsubscribe group.",
    "unsubscribe_not_found": "No such unsubscribe in this group.",
    "webhook_not_found": "No webhook with that id in this workspace.",
}
ERROR_EXTRA: dict[str, dict] = {
    "validation_failed": {
        "violations": [{"field": "to", "code": "invalid_email", "message": "Enter a valid email address."}]
    },
    "sender_not_available": {
        "reason": "sender_under_review",
        "detail": f"The sender {SND} is under review; staff approve new senders before they may send.",
    },
    "recipient_suppressed": {
        "reason": "bounce",
        "detail": "Remove it with DELETE /v1/suppressions/jane@example.com once the address works again.",
    },
    "template_variables_missing": {"missing_variables": ["total"]},
}
# A list's 422 is about its query, not a body.
LIST_VIOLATION = {"field": "limit", "code": "invalid", "message": "Enter a whole number from 1 to 100."}

# GET /v1/stats: one Berlin day of one sender's mail (the rates computed from the counts as the
# server does: outcomes are delivered + bounced; `blocked` is the part of `bounced` of class block).
STATS_SENDER = "snd_01JDQ3V8K4M2N7P5R9S6T0W1X3"
STATS_COUNTS = {
    "accepted": 1204,
    "queued": 1204,
    "sent": 1183,
    "deferred": 37,
    "delivered": 1179,
    "opened": 412,
    "clicked": 97,
    "bounced": 19,
    "complained": 1,
    "suppressed": 6,
    "unsubscribed": 2,
    "errored": 3,
    "blocked": 4,
}
STATS_RATES = {"delivery_rate": 0.9841, "bounce_rate": 0.0125, "block_rate": 0.0033, "complaint_rate": 0.0008}
STATS_START, STATS_END = "2026-11-29T23:00:00+00:00", "2026-11-30T23:00:00+00:00"
PROPERTIES.update(
    {
        **{
            f"StatsCounts.{kind}": (f"`{kind}` events in the bucket or period.", count)
            for kind, count in STATS_COUNTS.items()
        },
        "StatsCounts.blocked": ("Bounces of class `block` (part of `bounced`).", STATS_COUNTS["blocked"]),
        "StatsRates.delivery_rate": ("delivered / (delivered + bounced); null without outcomes.", 0.9841),
        "StatsRates.bounce_rate": ("Bounces other than blocks / (delivered + bounced).", 0.0125),
        "StatsRates.block_rate": ("Bounces of class `block` / (delivered + bounced).", 0.0033),
        "StatsRates.complaint_rate": ("complained / delivered.", 0.0008),
        "StatsTotals.counts": ("Events of each type over the whole period.", STATS_COUNTS),
        "StatsTotals.rates": ("The rates over the whole period.", STATS_RATES),
        "StatsBucket.start": ("The bucket's first instant.", STATS_START),
        "StatsBucket.end": ("The next bucket's start (exclusive).", STATS_END),
        "StatsBucket.counts": ("Events of each type in the bucket.", STATS_COUNTS),
        "StatsBucket.rates": ("The rates in the bucket.", STATS_RATES),
        "StatsFilters.sender_id": ("The `snd_…` sender asked for (null: every sender).", STATS_SENDER),
        "StatsFilters.unsubscribe_group_id": ("The `grp_…` group asked for (null: any).", GRP),
        "Stats.from": ("Start of the first bucket (`from` rounded down to a bucket edge).", STATS_START),
        "Stats.to": ("End of the last bucket (`to` rounded up to a bucket edge), exclusive.", STATS_END),
        "Stats.interval": ("The bucket size: `hour` or `day`.", "day"),
        "Stats.filters": (
            "The filters applied (null where none was asked).",
            {"sender_id": STATS_SENDER, "template_id": None, "unsubscribe_group_id": None},
        ),
        "Stats.totals": ("Counts and rates over the whole period.", {"counts": STATS_COUNTS, "rates": STATS_RATES}),
        "Stats.data": (
            "Every bucket in order, zeros included.",
            [{"start": STATS_START, "end": STATS_END, "counts": STATS_COUNTS, "rates": STATS_RATES}],
        ),
    }
)
ENUMS["IntervalEnum"] = "The bucket size of a stats answer."

# Parameters whose meaning (and so example) differs on one path from the same name elsewhere.
PATH_PARAMETERS: dict[tuple[str, str], object] = {
    ("/v1/stats", "from"): "2026-11-30T00:00:00+01:00",
    ("/v1/stats", "to"): "2026-12-02T00:00:00+01:00",
    ("/v1/stats", "interval"): "day",
    ("/v1/stats", "timezone"): "Europe/Berlin",
    ("/v1/stats", "senderId"): STATS_SENDER,
    ("/v1/stats", "templateId"): TPL,
    ("/v1/stats", "unsubscribeGroupId"): GRP,
}
