"""PUFFERPOST_SERVE_STATIC: the image's web process answers /static/ from the collected files
(PUFFERPOST_STATIC_ROOT) and nothing else; off (the default) it is an ordinary 404."""

import json
import os
import subprocess
import sys

from tests.processes import REPO

PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
answers = {}
for path in ("/static/admin/css/base.css", "/static/nothing-here.css", "/static/..%2f..%2fsecret.txt",
             "/static/../secret.txt"):
    response = client.get(path)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    answers[path] = [response.status_code, body.decode(errors="replace")[:200]]
print(json.dumps(answers))
"""


def probe(tmp_path, **extra):
    root = tmp_path / "static"
    (root / "admin" / "css").mkdir(parents=True)
    (root / "admin" / "css" / "base.css").write_text("body { color: teal }")
    (tmp_path / "secret.txt").write_text("not yours")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PUFFERPOST_"))},
        "DJANGO_SETTINGS_MODULE": "pufferpost.settings",
        "DJANGO_SECRET_KEY": "static-test",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "PUFFERPOST_VAR_DIR": str(tmp_path / "var"),
        "PUFFERPOST_STATIC_ROOT": str(root),
        **extra,
    }
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_served_from_the_static_root_when_switched_on_and_nothing_outside_it(tmp_path):
    answers = probe(tmp_path, PUFFERPOST_SERVE_STATIC="true")
    assert answers["/static/admin/css/base.css"] == [200, "body { color: teal }"]
    assert answers["/static/nothing-here.css"][0] == 404
    assert json.loads(answers["/static/nothing-here.css"][1])["error"]["code"] == "not_found"
    for escape in ("/static/..%2f..%2fsecret.txt", "/static/../secret.txt"):
        status, body = answers[escape]
        assert status in (400, 404), escape  # Django's serve() calls a way out of the root suspicious
        assert "not yours" not in body and json.loads(body)["error"]["code"], escape


def test_off_by_default(tmp_path):
    answers = probe(tmp_path)
    assert answers["/static/admin/css/base.css"][0] == 404
