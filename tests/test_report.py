"""`scalefit report` and `scalefit check --report md`: valid, offline, escaped HTML whose numbers are the fit's,
Markdown that renders as GitHub tables, and the fit.json inside the report loading back to identical forecasts.

Fits: Epoch's 240 Chinchilla points (shared data; 100 bootstrap draws, next-budget backtests) and the
multi-power law on the bundled official 400M training curves (data/examples/mpl_official).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, run
from conftest import ROOT, shared_file

html5lib = pytest.importorskip("html5lib")

SVG = "{http://www.w3.org/2000/svg}"
MPL_TRAIN = ROOT / "data" / "examples" / "mpl_official" / "curves_400m_train.csv"


# ---------------------------------------------------------------------------------------------- helpers
def parse_html(text: str):
    """Parse as HTML5, strictly: any parse error fails the test."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


def text_of(element) -> str:
    return "".join(element.itertext()).strip()


def section(doc, anchor: str):
    found = [s for s in doc.iter("section") if s.get("id") == anchor]
    assert found, f"no section #{anchor}"
    return found[0]


def table_rows(element) -> list[list[str]]:
    return [[text_of(c) for c in tr if c.tag in ("td", "th")] for tr in element.iter("tr")]


def embedded_fit(doc) -> dict:
    scripts = [s for s in doc.iter("script") if s.get("id") == "fit"]
    assert len(scripts) == 1 and scripts[0].get("type") == "application/json"
    return json.loads(scripts[0].text)


def assert_offline(doc, html: str) -> None:
    """Nothing is fetched: no external src/href, no <link>/<img>/<iframe>, no executable script, no CSS url."""
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        name = el.tag.replace(SVG, "")
        assert name not in ("link", "img", "iframe", "object", "embed", "base", "audio", "video"), name
        for attr, value in el.attrib.items():
            if attr.endswith("href") or attr == "src":
                assert value.startswith(("#", "data:image/")), (name, attr, value)  # in-page or inline
    assert all(s.get("type") == "application/json" for s in doc.iter("script"))
    for style in doc.iter("style"):
        assert "url(" not in (style.text or "").replace("url(#", "") and "@import" not in (style.text or "")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)


def ids_are_unique(doc) -> None:
    ids = [el.get("id") for el in doc.iter() if isinstance(el.tag, str) and el.get("id")]
    assert len(ids) == len(set(ids)), [i for i in set(ids) if ids.count(i) > 1][:5]


def elements(doc, *names):
    return [el for el in doc.iter() if isinstance(el.tag, str) and el.tag.replace(SVG, "") in names]


def _synthetic_runs(path: Path, *, shift: float = 1.0, names=None, seed: int = 0, outliers=()) -> Path:
    """16 runs (4 sizes x 4 token counts) of the Chinchilla law at its published values (E times ``shift``),
    0.5 % noise; the runs at the indices ``outliers`` 15 %, 20 %, ... above the law."""
    from scalefit.law import Columns
    from scalefit.registry import get_law

    law = get_law("chinchilla")
    n, d = (a.ravel() for a in np.meshgrid([5e7, 1e8, 3e8, 1e9], [1e9, 3e9, 1e10, 4e10]))
    theta = law.reference_theta().copy()
    theta[law.param_names.index("E")] *= shift
    y = law.predict(theta[None], law.prepare(Columns(params=n, tokens=d)))[0]
    y = y * np.exp(np.random.default_rng(seed).normal(0, 0.005, y.size))
    y[list(outliers)] *= 1.15 + 0.05 * np.arange(len(outliers))
    names = names or [f"run{i}" for i in range(y.size)]
    pd.DataFrame({"run": names, "params": n, "tokens": d, "loss": y}).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------- fits
@pytest.fixture(scope="module")
def epoch(tmp_path_factory):
    """Epoch's 240 points fitted with 100 draws and next-budget backtests, saved: (fit path, table path)."""
    from scalefit.backtest import calibrate_points
    from scalefit.data import load_runs
    from scalefit.fit import fit

    frame = pd.read_csv(shared_file("chinchilla", "svg_extracted_data.csv"))
    folder = tmp_path_factory.mktemp("epoch")
    table = folder / "epoch240.csv"
    frame.sort_values("loss", kind="stable").iloc[:-5].to_csv(table, index=False)
    data = load_runs(table, columns={"params": "Model Size", "flops": "Training FLOP"},
                     required=["params", "tokens", "loss"])
    result = calibrate_points(fit("chinchilla", data, n_bootstrap=100, seed=0), data)
    return result.save(folder / "fit.json"), table


@pytest.fixture(scope="module")
def multipower(tmp_path_factory):
    """The multi-power law on the bundled official 400M training curves (20 draws): (fit path, table path)."""
    from scalefit.curves import load_curves
    from scalefit.fit import fit

    folder = tmp_path_factory.mktemp("mpl")
    result = fit("multipower", load_curves(MPL_TRAIN), n_bootstrap=20, seed=0, identify=False)
    return result.save(folder / "fit.json"), MPL_TRAIN


# ---------------------------------------------------------------------------------------------- HTML
@pytest.fixture(scope="module")
def epoch_html(epoch, tmp_path_factory):
    fit_path, table = epoch
    out = tmp_path_factory.mktemp("epoch_report") / "report.html"
    res = run("report", fit_path, "--data", table, "--at", "params=7B,tokens=1.4T", "--at", "compute=5.76e23",
              "--out", out)
    assert res.exit_code == 0, res.output
    return out


def test_html_report_holds_the_fits_numbers(epoch, epoch_html):
    from scalefit.forecast import forecast
    from scalefit.result import load_fit

    fit = load_fit(epoch[0])
    html = epoch_html.read_text(encoding="utf-8")
    doc = parse_html(html)
    assert text_of(doc.find(".//h1")) == "Scaling-law fit: chinchilla"
    assert fit.law.formula in [text_of(p) for p in section(doc, "law").iter("pre")]
    assert "Hoffmann et al. 2022" in text_of(section(doc, "law"))
    # the parameter table: every value and interval as the fit has them
    rows = {r[0]: r for r in table_rows(section(doc, "parameters").find(".//table"))[1:]}
    assert set(rows) == set(fit.param_names)
    for name, e in fit.params.items():
        assert rows[name][1] == f"{e.value:.6g}"
        assert rows[name][2] == f"[{e.low:.5g}, {e.high:.5g}]"
        assert float(rows[name][1]) == pytest.approx(e.value, rel=1e-5)
    # diagnostics in words, with the fit's R²
    assert f"R² {fit.diagnostics['r2_log']:.5f}" in text_of(section(doc, "diagnostics"))
    # forecasts: the loss and its confidence interval are the library's
    rows = table_rows(section(doc, "forecasts"))
    f = forecast(fit.law, fit.theta, fit.draws, params=7e9, tokens=1.4e12, ci=fit.ci, stretch=fit.stretch)
    assert rows[1][0] == "params=7B,tokens=1.4T" and rows[1][4] == f"{f.loss.value:.5g}"
    assert rows[1][5] == f"[{f.loss.low:.4g}, {f.loss.high:.4g}]"
    assert rows[2][0].startswith("compute=5.76e23 (compute-optimal)")
    # backtests: one row per next-budget fold the fit recorded
    assert len(table_rows(section(doc, "backtests"))) - 1 == fit.extrapolation_errors["folds"] >= 2
    # two figures with captions, drawn as inline SVG
    figures = list(doc.iter("figure"))
    assert len(figures) == 2
    for fig in figures:
        assert fig.find(f"{SVG}svg") is not None and len(text_of(fig.find("figcaption"))) > 40
    provenance = text_of(section(doc, "provenance"))
    assert fit.data_info["hash"] in provenance and "scalefit 0." in provenance
    assert "are the data this fit was made from" in text_of(section(doc, "figures"))
    assert_offline(doc, html)
    ids_are_unique(doc)


def test_embedded_fit_loads_back_and_predicts_identically(epoch, epoch_html, tmp_path):
    import warnings

    from scalefit.result import load_fit

    payload = embedded_fit(parse_html(epoch_html.read_text(encoding="utf-8")))
    copy = tmp_path / "from_report.json"
    copy.write_text(json.dumps(payload), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksum mismatch would warn
        again = load_fit(copy)
    original = load_fit(epoch[0])
    assert again.meta["checksum"] == "ok"
    np.testing.assert_array_equal(again.theta, original.theta)
    np.testing.assert_array_equal(again.draws, original.draws)
    n, d = np.array([1e8, 7e9, 7e10]), np.array([2e9, 1.4e12, 1.4e13])
    a, b = again.predict(params=n, tokens=d), original.predict(params=n, tokens=d)
    for field in ("value", "low", "high"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_a_fit_never_saved_is_embedded_whole(tmp_path):
    """The library call on an in-memory fit: draws inline, a valid checksum, the same forecasts."""
    from scalefit.data import load_runs
    from scalefit.fit import fit
    from scalefit.report import write_report
    from scalefit.result import load_fit

    result = fit("chinchilla", load_runs(_synthetic_runs(tmp_path / "runs.csv")), n_bootstrap=30, seed=1)
    (out,) = write_report(result, tmp_path / "r.html")
    (tmp_path / "fit.json").write_text(json.dumps(embedded_fit(parse_html(out.read_text()))))
    again = load_fit(tmp_path / "fit.json")
    assert again.meta["checksum"] == "ok" and again.draws.shape == (30, 5)
    assert again.predict(params=1e9, tokens=2e10).high[0] == result.predict(params=1e9, tokens=2e10).high[0]
    assert "No figures" in out.read_text()


def test_an_edited_fit_is_not_re_signed(tmp_path):
    """A fit.json edited by hand keeps failing its checksum inside the report: the report never launders it."""
    from scalefit.data import load_runs
    from scalefit.fit import fit
    from scalefit.result import load_fit

    fit("chinchilla", load_runs(_synthetic_runs(tmp_path / "runs.csv")), n_bootstrap=20, seed=1).save(tmp_path / "f.json")
    payload = json.loads((tmp_path / "f.json").read_text())
    payload["params"]["E"]["high"] *= 1.5  # a wider interval, typed in by hand
    (tmp_path / "f.json").write_text(json.dumps(payload))
    res = run("report", tmp_path / "f.json", "--out", tmp_path / "r.html")
    assert res.exit_code == 0 and "checksum mismatch" in res.stderr
    alert = [p for p in parse_html((tmp_path / "r.html").read_text()).iter("p") if p.get("class") == "alert"]
    assert "edited by hand" in text_of(alert[0])
    (tmp_path / "back.json").write_text(json.dumps(embedded_fit(parse_html((tmp_path / "r.html").read_text()))))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        assert load_fit(tmp_path / "back.json").meta["checksum"] == "mismatch"


def test_hostile_names_stay_text(tmp_path):
    """A run named like markup is shown as text, never parsed: no injected element in HTML or Markdown."""
    hostile = ["<script>alert(1)</script>", "--><img src=x onerror=alert(1)><!--", "a|b", "</script><b>x</b>",
               "$x$ *y* [z](http://e.x)"]
    spread = [0, 6, 9, 15, 12]  # one outlier per model size or token count, so the law cannot bend to them
    names = [f"run{i}" for i in range(16)]
    for i, name in zip(spread, hostile):
        names[i] = name
    runs = _synthetic_runs(tmp_path / "runs.csv", names=names, seed=3, outliers=spread)
    fit_path = tmp_path / "fit.json"
    assert run("fit", runs, "-b", "20", "--out", fit_path).exit_code == 0
    res = run("report", fit_path, "--data", runs, "--out", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    doc = parse_html(html)
    assert [s.get("id") for s in doc.iter("script")] == ["fit"]
    assert not elements(doc, "img", "b")
    shown = {r[0] for r in table_rows(section(doc, "diagnostics"))[1:]}
    assert shown == set(hostile)  # the outliers, named as they are, character for character
    assert embedded_fit(doc)["data"]["source"] == str(runs)
    assert_offline(doc, html)
    # Markdown: the names render as text (no element), and a '|' does not split a table cell
    md_out = tmp_path / "r.md"
    assert run("report", fit_path, "--data", runs, "--out", md_out).exit_code == 0
    rendered = render_gfm(md_out.read_text(encoding="utf-8"))
    assert not elements(rendered, "b", "script", "a")
    assert [img.get("src") for img in elements(rendered, "img")] == ["r_fit.svg", "r_residuals.svg"]
    for table in rendered.iter("table"):
        widths = {len(r) for r in table_rows(table)}
        assert len(widths) == 1, widths
    assert set(hostile) <= {r[0] for t in rendered.iter("table") for r in table_rows(t)}


def test_report_refuses_to_overwrite_and_checks_before_work(epoch, tmp_path):
    fit_path, table = epoch
    out = tmp_path / "r.md"
    (tmp_path / "r_fit.svg").write_text("mine")  # a figure name the Markdown report would take
    assert_clean_error(run("report", fit_path, "--data", table, "--out", out), "r_fit.svg: already exists")
    assert not out.exists() and (tmp_path / "r_fit.svg").read_text() == "mine"
    assert_clean_error(run("report", fit_path, "--out", tmp_path / "r.pdf"), "--format")
    assert_clean_error(run("report", fit_path, "--out", tmp_path / "r.html", "--format", "pdf"), "--format 'pdf'")
    assert_clean_error(run("report", fit_path, "--out", tmp_path / "r.html", "--at", "tokens=1e40"), "--at")
    assert_clean_error(run("report", fit_path, "--out", fit_path, "--format", "html", "--force"), "input")
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------------------------------------- Markdown
def render_gfm(text: str):
    """Markdown -> HTML with GitHub's tables (markdown-it, which rich already installs) -> parsed tree."""
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    return parse_html(f"<!DOCTYPE html><html><head><title>t</title></head><body>{html}</body></html>")


def test_markdown_report_renders_as_github_tables(epoch, tmp_path):
    from scalefit.result import load_fit

    fit_path, table = epoch
    out = tmp_path / "summary.md"
    res = run("report", fit_path, "--data", table, "--at", "params=7B,tokens=1.4T", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)["written"]
    assert written == [str(out), str(tmp_path / "summary_fit.svg"), str(tmp_path / "summary_residuals.svg")]
    text = out.read_text(encoding="utf-8")
    # well-formed pipe tables: header, alignment row, rows of the same width
    for block in re.findall(r"(?m)(?:^\|.*\|\n)+", text):
        lines = block.strip().splitlines()
        cells = [len(re.split(r"(?<!\\)\|", line)) for line in lines]
        assert len(set(cells)) == 1 and re.fullmatch(r"\|(?:-{3}:?\|)+", lines[1]), block
    doc = render_gfm(text)
    tables = list(doc.iter("table"))
    assert len(tables) >= 5
    fit = load_fit(fit_path)
    params = {r[0]: r for r in table_rows(tables[0])[1:]}
    for name, e in fit.params.items():
        assert params[name][1] == f"{e.value:.6g}" and params[name][2] == f"[{e.low:.5g}, {e.high:.5g}]"
    images = [img.get("src") for img in doc.iter("img")]
    assert images == ["summary_fit.svg", "summary_residuals.svg"]
    for name in images:
        assert (tmp_path / name).read_text().lstrip().startswith("<?xml")
    assert [text_of(h) for h in doc.iter("h2")][:3] == ["Summary", "The law", "Fitted parameters"]


def test_check_report_md_is_the_drift_table(tmp_path):
    base, moved = tmp_path / "base.json", tmp_path / "moved.json"
    for path, shift in ((base, 1.0), (moved, 1.06)):
        runs = _synthetic_runs(tmp_path / f"{path.stem}.csv", shift=shift)
        assert run("fit", runs, "-b", "50", "--out", path).exit_code == 0
    same = run("check", base, "--baseline", base, "--report", "md")
    assert same.exit_code == 0, same.output
    assert same.stdout.startswith("### scalefit check: passed: all 5 quantities within tolerance")
    drift = run("check", moved, "--baseline", base, "--at", "params=7B,tokens=1.4T", "--report", "md")
    assert drift.exit_code == 1
    rows = {r[0]: r for r in table_rows(render_gfm(drift.stdout).find(".//table"))[1:]}
    assert set(rows) == {"E", "A", "B", "alpha", "beta", "loss@params=7B,tokens=1.4T"}
    as_json = json.loads(run("check", moved, "--baseline", base, "--at", "params=7B,tokens=1.4T", "--json").stdout)
    for q in as_json["quantities"]:  # the same verdicts and numbers as the JSON report
        row = rows[q["name"]]
        assert row[-1] == ("ok" if q["ok"] else "DRIFT") and row[2] == f"{q['baseline']:.6g}" and row[3] == f"{q['new']:.6g}"
    n_drift = sum(not q["ok"] for q in as_json["quantities"])
    assert n_drift >= 1 and drift.stdout.startswith(f"### scalefit check: DRIFT: {n_drift} of 6 quantities moved")
    assert_clean_error(run("check", base, "--baseline", base, "--report", "html"), "--report html")
    assert_clean_error(run("check", base, "--baseline", base, "--report", "md", "--json"), "not both")


# ---------------------------------------------------------------------------------------------- curve laws
def test_multipower_report_shows_each_curve_and_forecasts_schedules(multipower, tmp_path):
    from scalefit.curves import load_curves
    from scalefit.result import load_fit
    from scalefit.schedule import curve_params, predict_for

    fit_path, table = multipower
    out = tmp_path / "mpl.html"
    spec = "cosine:peak=3e-4,warmup=2160,steps=72000,floor=3e-5"
    res = run("report", fit_path, "--data", table, "--at", f"long={spec}", "--out", out)
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    doc = parse_html(html)
    assert [text_of(f.find("h3")) for f in doc.iter("figure")] == [
        "Figure 1. Observed and predicted loss curves", "Figure 2. Residuals", "Figure 3. Forecast loss curves"]
    # each run's last observed loss against the law
    data = load_curves(table)
    last = data.frame.sort_values("step").groupby("run").tail(1).set_index("run")
    rows = [r for r in table_rows(section(doc, "figures")) if r and r[0] in set(last.index)]
    assert {r[0] for r in rows} == {"cosine_24000", "constant_24000", "wsdcon_9"}
    for r in rows:
        assert r[2] == f"{last.loc[r[0], 'loss']:.5g}" and r[1] == f"{int(last.loc[r[0], 'step']):,}"
    fit = load_fit(fit_path)
    expected = predict_for(curve_params(fit=fit, source=str(fit_path)), "long", spec)
    forecast = [r for r in table_rows(section(doc, "forecasts")) if r[0] == "long"][0]
    assert forecast[1] == "72,000" and forecast[2] == f"{expected.final_loss:.5g}"
    assert forecast[4] == expected.interval
    assert any("3.0x" in text_of(li) or "past" in text_of(li) for li in section(doc, "forecasts").iter("li"))
    assert_offline(doc, html)
    ids_are_unique(doc)


def test_curve_backtests_are_reported_as_measured(tmp_path):
    """A calibrated curve fit (lr_annealing: seconds) reports each leave-one-curve-out and half-horizon
    error it recorded, and what the calibrated interval adds, and forecasts with that interval."""
    import math

    from scalefit.curve_backtest import calibrate
    from scalefit.curves import load_curves
    from scalefit.fit import fit
    from scalefit.stats import model_error_halfwidth

    data = load_curves(MPL_TRAIN)
    result = calibrate(fit("lr_annealing", data, n_bootstrap=20, seed=0, identify=False), data)
    fit_path = result.save(tmp_path / "fit.json")
    out = tmp_path / "r.md"
    res = run("report", fit_path, "--data", MPL_TRAIN, "--at", "cosine:peak=3e-4,warmup=2160,steps=48000", "--out", out)
    assert res.exit_code == 0, res.output
    doc = render_gfm(out.read_text(encoding="utf-8"))
    tables = {text_of(t.find(".//th")): t for t in doc.iter("table")}
    rows = table_rows(tables["backtest"])[1:]
    record = result.extrapolation_errors
    expected = [["leave this curve out (a new schedule)", f"{r:.2f}x", f"{100 * math.expm1(e):+.3g} %"]
                for e, r in record["shape"]]
    expected += [["fit the first half, forecast the end", f"{r:.2f}x", f"{100 * math.expm1(e):+.3g} %"]
                 for e, r in record["horizon"]]
    assert rows == expected and len(rows) == 6
    at1, at2 = (model_error_halfwidth(record, r, result.ci) for r in (1.0, 2.0))
    assert f"±{100 * at1:.2f} % (log) at the fitted horizon and ±{100 * at2:.2f} % at twice it" in text_of(doc)
    forecast = table_rows(tables["schedule"])[1]
    assert forecast[0] == "cosine 48,000 steps" and forecast[-1] == "calibrated"
    assert [img.get("src") for img in doc.iter("img")] == ["r_fit.svg", "r_residuals.svg", "r_forecast.svg"]


def test_a_failed_fit_says_so_first(tmp_path):
    """Losses that do not depend on size: FIT FAILED at the top, and no interval presented as an estimate."""
    frame = pd.DataFrame({"params": np.repeat([1e8, 3e8, 1e9, 3e9], 3), "tokens": np.tile([2e9, 6e9, 2e10], 4)})
    frame["loss"] = 3.0 * np.exp(np.random.default_rng(5).normal(0, 0.02, len(frame)))
    frame.to_csv(tmp_path / "noise.csv", index=False)
    assert run("fit", tmp_path / "noise.csv", "-b", "20", "--out", tmp_path / "fit.json").exit_code == 0
    assert run("report", tmp_path / "fit.json", "--out", tmp_path / "r.html").exit_code == 0
    doc = parse_html((tmp_path / "r.html").read_text(encoding="utf-8"))
    alert = [p for p in doc.iter("p") if p.get("class") == "alert"]
    assert len(alert) == 1 and text_of(alert[0]).startswith("FIT FAILED")
    rows = table_rows(section(doc, "parameters").find(".//table"))[1:]
    assert all(r[2] == "–" and r[3] == "–" for r in rows)


# ---------------------------------------------------------------------------------------------- a real browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary on PATH")
def test_reports_render_in_headless_chromium(epoch_html, multipower, tmp_path):
    import matplotlib.image as mpimg

    fit_path, table = multipower
    mpl_html = tmp_path / "mpl.html"
    assert run("report", fit_path, "--data", table, "--out", mpl_html).exit_code == 0
    for page in (epoch_html, mpl_html):
        shot = tmp_path / f"{page.stem}.png"
        screenshot(page, shot)
        pixels = mpimg.imread(shot)[..., :3]
        assert pixels.shape[0] == 2400 and pixels.shape[1] == 1100
        # not a blank or error page: dark text and coloured figure pixels on white
        assert (pixels.mean(axis=2) < 0.3).mean() > 0.005
        assert (pixels.std(axis=2) > 0.15).mean() > 0.001


def screenshot(page: Path, png: Path, height: int = 2400) -> None:
    """Render ``page`` in headless Chromium, offline, to a PNG 1100 px wide."""
    args = [_chromium(), "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", f"--window-size=1100,{height}", f"--screenshot={png}",
            page.resolve().as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    assert png.stat().st_size > 10_000
