"""The guideline's scoring reproduces its worked examples and CVSS v3.0's published examples."""

from __future__ import annotations

import json

import pytest

from firmware.core.errors import ConfigError
from host_tools.cli.main import main
from host_tools.risk import cvss

PLAIN = "AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.mark.parametrize(("vector", "score", "sev"), [
    (PLAIN + "/LP:N/II:N", 8.1, "High"),           # plain CVSS: platform access
    (PLAIN + "/LP:N/II:H", 9.3, "Critical"),       # ★★ service handling personal data
    (PLAIN + "/LP:Y/II:H", 10.0, "Critical"),      # devices of a ★★★ service
])
def test_guideline_worked_examples(vector: str, score: float, sev: str) -> None:
    s = cvss.score(vector)
    assert s["base"] == score
    assert s["severity"] == sev
    assert "environmental" not in s


# FIRST "CVSS v3.0 Examples" (published base scores).
@pytest.mark.parametrize(("cve", "vector", "score"), [
    ("CVE-2013-1937 phpMyAdmin XSS", "AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVE-2013-0375 MySQL SQL injection", "AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVE-2014-3566 SSLv3 POODLE", "AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),
    ("CVE-2012-1516 VMware guest escape", "AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
    ("CVE-2009-0783 Tomcat XML parser", "AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 4.2),
    ("CVE-2012-0384 Cisco IOS", "AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
    ("CVE-2015-1098 Apple iWork", "AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 7.8),
    ("CVE-2014-0160 Heartbleed", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
    ("CVE-2014-6271 Shellshock", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVE-2008-1447 DNS Kaminsky", "AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 6.8),
    ("CVE-2014-2005 Sophos disk encryption", "AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 6.8),
    ("CVE-2010-0467 Joomla traversal", "AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 5.8),
])
def test_cvss_v30_specification_examples(cve: str, vector: str, score: float) -> None:
    assert cvss.score("CVSS:3.0/" + vector)["base"] == score, cve
    assert cvss.score(vector)["base"] == score, cve  # prefix optional, LP/II default to N


def test_environmental_matches_first_calculator() -> None:
    s = cvss.score("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H/IR:H/AR:H/MAV:A/MAC:H/"
                   "MPR:H/MS:U/MC:H/MI:H/MA:H")
    assert (s["base"], s["environmental"]) == (7.4, 6.4)
    assert s["environmental_severity"] == "Medium"


def test_environmental_with_guideline_modifiers() -> None:
    # Countermeasures remove the life/property and personal-data multipliers: back to 8.1.
    s = cvss.score(PLAIN + "/LP:Y/II:H/MLP:N/MII:N")
    assert (s["base"], s["environmental"]) == (10.0, 8.1)
    # MLP/MII alone on a plain vector raise the environmental value like LP/II raise the base.
    assert cvss.score(PLAIN + "/MLP:Y/MII:H")["environmental"] == 10.0
    assert cvss.score(PLAIN + "/MII:H")["environmental"] == 9.3
    # X means "use the base metric": identical to no environmental metric at all.
    assert cvss.score(PLAIN + "/II:H/MII:X/MC:X")["environmental"] == 9.3
    # Modified scope changes the PR weight and applies 1.08.
    assert cvss.score("AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/MS:C")["environmental"] == 9.9
    # A countermeasure that removes every impact gives 0.0 / None.
    s = cvss.score(PLAIN + "/MC:N/MI:N/MA:N")
    assert (s["environmental"], s["environmental_severity"]) == (0.0, "None")


def test_temporal_metrics_lower_environmental() -> None:
    s = cvss.score("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:U")
    # RoundUp(9.8 * 0.91 * 0.95 * 0.92) = RoundUp(7.7939...) = 7.8
    assert (s["base"], s["environmental"]) == (9.8, 7.8)


def test_round_up_is_exact() -> None:
    assert cvss.round_up(4.0) == 4.0
    assert cvss.round_up(4.000000000001) == 4.0  # floating-point noise is not a tenth
    assert cvss.round_up(4.02) == 4.1
    assert cvss.round_up(0.01) == 0.1
    assert cvss.round_up(10.0) == 10.0


def test_severity_bands() -> None:
    assert [cvss.severity(x) for x in (0.0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        "None", "Low", "Low", "Medium", "Medium", "High", "High", "Critical", "Critical"]


def test_no_impact_scores_zero() -> None:
    s = cvss.score("AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:N/LP:Y/II:H")
    assert (s["base"], s["severity"]) == (0.0, "None")


@pytest.mark.parametrize(("vector", "metric"), [
    ("AV:X/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV"),      # bad value
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:Q", "A"),
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H", "A"),           # missing base metric
    ("AV:N/AC:H/PR:N/UI:N/S:Z/C:H/I:H/A:H", "S"),
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/LP:H", "LP"),  # LP is Y/N
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/II:L", "II"),  # II is H/N
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/MII:Y", "MII"),
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/CR:X/CR:H", "CR"),  # duplicate
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/XX:Y", "XX"),  # unknown metric
    ("AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/garbage", "garbage"),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS"),  # 3.1 differs: refused
    ("", ""),
])
def test_malformed_vectors_are_refused_naming_the_metric(vector: str, metric: str) -> None:
    with pytest.raises(ConfigError) as exc:
        cvss.score(vector)
    if metric:
        assert exc.value.field == metric
        assert f"'{metric}'" in str(exc.value)


def test_cli_score_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["risk", "score", PLAIN + "/LP:Y/II:H/MLP:N/MII:N", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["base"] == 10.0 and out["environmental"] == 8.1
    assert out["severity"] == "Critical"


def test_cli_score_text_and_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["risk", "score", PLAIN + "/II:H"]) == 0
    assert "base 9.3 Critical" in capsys.readouterr().out
    assert main(["risk", "score", "AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:Q"]) == 1
    assert "field 'A'" in capsys.readouterr().err
