"""Every operation with an id in its path, taken from the published schema (as the 401 test is):
another workspace's id answers exactly like an unknown one, a 404 that changes nothing."""

import pytest

from tests.helpers import assert_envelope, schema_operations

# Which seeded row each path names, by the path's first segment; a new resource without an entry
# fails the test below rather than going unchecked.
RESOURCE_IDS = {
    "domains": "dom",
    "messages": "msg",
    "senders": "snd",
    "templates": "tpl",
    "unsubscribe-groups": "grp",
    "webhooks": "whk",
}
UNKNOWN_ULID = "01J9Z2K3M4N5P6Q7R8S9T0V1W2"
EMAILS = {"suppressions": "blocked@example.com", "unsubscribe-groups": "optout@example.com"}

OPERATIONS = [(method, path) for method, path in schema_operations() if "{" in path]


def _url(path, seeded, *, unknown=False):
    resource = path.split("/")[2]
    values = {"number": 1, "email": EMAILS.get(resource)}
    if "{id}" in path:
        prefix = RESOURCE_IDS[resource]
        values["id"] = f"{prefix}_{UNKNOWN_ULID}" if unknown else seeded.ids[prefix]
    elif unknown:
        values["email"] = "nobody-here@example.com"
    return path.format(**values)


def test_every_path_with_an_id_is_covered():
    assert len(OPERATIONS) >= 20
    for _, path in OPERATIONS:
        resource = path.split("/")[2]
        assert resource in RESOURCE_IDS or ("{id}" not in path and resource in EMAILS), path


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_another_workspaces_id_answers_exactly_like_an_unknown_one_on_every_route(method, path, seeded, other_api):
    def call(client, url):
        return client.generic(method, url, "{}", content_type="application/json")

    foreign = call(other_api, _url(path, seeded))
    unknown = call(other_api, _url(path, seeded, unknown=True))
    foreign_error = assert_envelope(foreign, 404, unknown.json()["error"]["code"])
    unknown_error = assert_envelope(unknown, 404, foreign_error["code"])
    foreign_error.pop("request_id"), unknown_error.pop("request_id")
    assert foreign_error == unknown_error
    assert foreign_error["code"].endswith("_not_found")
    # The id is real and still there: its own workspace does not get a 404 for it.
    assert call(seeded.client, _url(path, seeded)).status_code != 404
