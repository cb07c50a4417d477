"""The parser on real bounces nobody here wrote: flufl.bounce 6.0.0's test corpus (117 messages from
Postfix, Exim, qmail, Exchange, Sendmail, Yahoo, AOL, GroupWise…).

The sdist is fetched from the package index once into var/test-cache/ (never copied into the
repository); the expected answers are flufl.bounce's own: the `DETECTORS` table of its
tests/test_detectors.py (per sample, the addresses its detectors must find and whether they are
temporary), read with `ast.literal_eval`. A sample listed with no addresses, or not listed at all,
must not produce a failure.
"""

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from messaging.feedback.parse import report_parse

SDIST = "flufl_bounce-6.0.0.tar.gz"
GOAL = 115


@pytest.fixture(scope="session")
def flufl_corpus(tmp_path_factory):
    cache = Path(settings.VAR_DIR) / "test-cache"
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / SDIST
    if not archive.exists():
        # Into a directory of this process, then renamed: parallel test workers never read half a file.
        download = Path(tempfile.mkdtemp(dir=cache))
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
            + ["--no-binary", ":all:", "--no-deps", "flufl.bounce==6.0.0", "-d", str(download)],
            check=True,
            timeout=300,
        )
        os.replace(download / SDIST, archive)
        shutil.rmtree(download, ignore_errors=True)
    root = tmp_path_factory.mktemp("flufl")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    tests = root / "flufl_bounce-6.0.0" / "tests"
    return tests / "data", _expectations(tests / "test_detectors.py", tests / "data")


def _expectations(source: Path, data: Path) -> dict[str, tuple[set[str], str]]:
    """{sample: (expected addresses lowercased, "failed" or "delayed")} from flufl.bounce's table."""
    module = ast.parse(source.read_text())
    table = next(
        node.value
        for node in module.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DETECTORS"
    )
    expected: dict[str, tuple[set[str], str]] = {}
    for _detector, sample, addresses, temporary in ast.literal_eval(table):
        known, action = expected.get(sample, (set(), "failed"))
        if addresses:  # a sample two detectors look at (groupwise_02): the one that finds it decides
            known, action = known | {a.decode().lower() for a in addresses}, "delayed" if temporary else "failed"
        expected[sample] = (known, action)
    for path in data.glob("*.txt"):
        expected.setdefault(path.name, (set(), "failed"))
    return expected


def test_the_parser_classifies_flufl_bounces_corpus(flufl_corpus, capsys):
    data, expected = flufl_corpus
    assert len(expected) == 117
    right, wrong_recipient, misses = 0, [], []
    for sample, (addresses, action) in sorted(expected.items()):
        report = report_parse((data / sample).read_bytes())
        found = {d.recipient.lower() for d in report.deliveries if d.action == action}
        if addresses:
            ok = found == addresses
            if not addresses <= {d.recipient.lower() for d in report.deliveries}:
                wrong_recipient.append((sample, sorted(addresses), sorted(found)))
        else:
            ok = not any(d.action == "failed" for d in report.deliveries)
        right += ok
        if not ok:
            misses.append((sample, report.kind, sorted(addresses), action, sorted(found)))

    with capsys.disabled():
        print(f"\nflufl.bounce 6.0.0 corpus: {right}/{len(expected)} classified right; misses: {misses}")
    assert right >= GOAL, misses
    assert wrong_recipient == []


def test_a_dsn_with_a_whitespace_only_line_keeps_its_groups_apart(flufl_corpus):
    data, _ = flufl_corpus
    [delivery] = report_parse((data / "dsn_03.txt").read_bytes()).deliveries
    # `Action: failure`, and the status only as `Status: 553 Exceeded maximum inbound message size`.
    assert (delivery.recipient, delivery.action, delivery.status) == ("userx@example.be", "failed", "5.0.0")
    assert delivery.diagnostic.startswith("553 Exceeded")
    assert delivery.classification.basic_code == 553
    assert delivery.reporting_mta  # the per-message group was not swallowed by the recipient's


def test_original_recipient_is_preferred_over_a_rewritten_final_one(flufl_corpus):
    data, _ = flufl_corpus
    [x400] = report_parse((data / "dsn_02.txt").read_bytes()).deliveries
    assert (x400.recipient, x400.action, x400.status) == ("zzzzz@example.uk", "failed", "4.4.7")
    assert x400.classification.bounce_class == "expired"
    [alias] = report_parse((data / "dsn_01.txt").read_bytes()).deliveries
    assert alias.recipient == "userx@example.com"


def test_a_dsn_without_a_usable_recipient_block_falls_back_to_the_heuristic_scan(flufl_corpus):
    data, _ = flufl_corpus
    report = report_parse((data / "netscape_01.txt").read_bytes())
    assert report.kind == "heuristic"
    assert {d.recipient.lower() for d in report.deliveries} == {"aaaaa@corel.com", "bbbbb@corel.com"}
