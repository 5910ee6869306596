"""`mamori risk register`: threat model (TOML/CSV) to risk register and proposed service level."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from host_tools.cli.main import main
from host_tools.risk.register import build_register, load_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "host_tools/risk/examples/door-lock.toml"


def test_door_lock_example_is_level_3() -> None:
    reg = build_register(load_model(EXAMPLE))
    assert reg["proposed_level"]["level"] == 3
    t1 = next(r for r in reg["threats"] if r["id"] == "T1")
    assert (t1["base"], t1["base_severity"]) == (10.0, "Critical")  # the guideline's 10.0
    for r in reg["threats"]:
        assert r["environmental"] <= r["base"], r["id"]
    assert reg["summary"]["before"]["Critical"] >= 5
    assert reg["summary"]["max_after"] < reg["summary"]["max_before"]


def test_csv_model_and_levels(tmp_path: Path) -> None:
    model = tmp_path / "shutter.csv"
    model.write_text(
        "id,component,entry_point,threat,base,modified,countermeasures\n"
        "S1,platform,Internet,unauthorised access,AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/II:H,"
        "MPR:H,MFA; least privilege\n"
        "S2,gateway,LAN,spoofed schedule,AV:A/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:L,,\n",
        encoding="utf-8")
    reg = build_register(load_model(model))
    assert reg["proposed_level"]["level"] == 2  # personal data, no life/property
    s1, s2 = reg["threats"]
    assert s1["base"] == 9.3 and s1["countermeasures"] == ["MFA", "least privilege"]
    assert s1["environmental"] < 9.3
    assert s2["environmental"] == s2["base"]  # no countermeasures: after = before
    model.write_text("component,entry_point,threat,base\nc,e,t,AV:N/AC:L/PR:N/UI:N/S:U/C:L/"
                     "I:N/A:N\n", encoding="utf-8")
    assert build_register(load_model(model))["proposed_level"]["level"] == 1


def test_service_flags_raise_the_level(tmp_path: Path) -> None:
    model = tmp_path / "m.toml"
    model.write_text('[service]\nlife_property = true\n[[threat]]\ncomponent="c"\n'
                     'entry_point="e"\nthreat="t"\nbase="AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"\n',
                     encoding="utf-8")
    assert build_register(load_model(model))["proposed_level"]["level"] == 3


@pytest.mark.parametrize(("body", "field"), [
    ('[[threat]]\ncomponent="c"\nentry_point="e"\nthreat="t"\nbase="AV:N/AC:L"\n',
     "threat[0].base"),
    ('[[threat]]\ncomponent="c"\nentry_point="e"\nthreat="t"\n'
     'base="AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"\nmodified="AV:L"\n', "threat[0].modified"),
    ('[[threat]]\ncomponent="c"\nentry_point="e"\nthreat="t"\n'
     'base="AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"\nmodified="MAV:Q"\n', "threat[0].modified"),
    ('[[threat]]\ncomponent="c"\nthreat="t"\nbase="AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"\n',
     "threat[0].entry_point"),
    ('[service]\nname="x"\n', "threat"),
])
def test_malformed_models_are_refused(tmp_path: Path, body: str, field: str) -> None:
    model = tmp_path / "bad.toml"
    model.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_model(model)
    assert exc.value.field == field


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("x: 1", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "m.yaml")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "absent.toml")


def test_cli_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "register.csv"
    assert main(["risk", "register", str(EXAMPLE), "--out", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "proposed service level: ★★★" in text and "T1" in text
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert rows[0]["id"] == "T1" and rows[0]["base"] == "10.0"
    assert main(["risk", "register", str(EXAMPLE), "--json"]) == 0
    reg = json.loads(capsys.readouterr().out)
    assert reg["proposed_level"]["level"] == 3 and len(reg["threats"]) == 7
