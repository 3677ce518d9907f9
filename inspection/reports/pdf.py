"""The shift report as a PDF (reportlab): header, key figures, NG Pareto, p-chart of the NG rate per
hour, score histogram with the thresholds, relabel outcomes, the worst rejects with their outlines,
the event log, "page X of Y" and a signature line. Draws `inspection.reports.figures.ReportData`; reads
nothing but the rejects' image files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zoneinfo
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape

import cv2
from reportlab.graphics.shapes import Circle, Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import Image, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from inspection.reports.figures import ReportData
from inspection.runtime.overlay import recorded_part

WIDTH = A4[0] - 36 * mm
NG_RED = colors.HexColor("#c62828")
BLUE = colors.HexColor("#3d6fb4")
GREY = colors.HexColor("#9aa0a6")


class _NumberedCanvas(rl_canvas.Canvas):  # type: ignore[misc]  # (reportlab ships no type hints)
    """Writes "page X of Y" once the number of pages is known (pages are kept until the save)."""

    def __init__(self, *args: Any, footer: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []
        self._footer = footer

    def showPage(self) -> None:  # (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont("Helvetica", 8)
            self.setFillColor(colors.grey)
            self.drawString(18 * mm, 10 * mm, self._footer)
            self.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def write_pdf(data: ReportData, path: Path) -> int:
    """Write the report; returns its number of pages."""
    pen = _pen(data)
    story = [
        *_header(data, pen),
        *_key_figures(data, pen),
        *_stations(data, pen),
        *_charts(data, pen),
        *_relabel_outcomes(data, pen),
        PageBreak(),
        *_worst_rejects(data, pen),
        *_event_log(data, pen),
        *_signature(),
    ]
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"Quality report - {data.window.title}",
        author="Lepton Inspect",
    )
    footer = f"Lepton Inspect - {data.line} - {data.window.title}"

    def canvas(*args: Any, **kwargs: Any) -> _NumberedCanvas:
        return _NumberedCanvas(*args, footer=footer, **kwargs)

    doc.build(story, canvasmaker=canvas)
    return int(doc.page)


class _LocalTime(Protocol):
    """Formats a naive UTC time in the line's time zone."""

    def __call__(self, t: dt.datetime, pattern: str = ...) -> str: ...


@dataclasses.dataclass(frozen=True)
class _Pen:
    """What every section of the report writes with: the paragraph styles and the line's clock."""

    styles: Any  # reportlab's sample style sheet
    small: ParagraphStyle
    local: _LocalTime

    def heading(self, text: str) -> Paragraph:
        return Paragraph(text, self.styles["Heading2"])

    def body(self, text: str) -> Paragraph:
        return Paragraph(text, self.styles["BodyText"])


def _pen(data: ReportData) -> _Pen:
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    return _Pen(styles, small, _local(zoneinfo.ZoneInfo(data.tz)))


def _header(data: ReportData, pen: _Pen) -> list[Any]:
    """Title and period; line, stations, cameras, recipes and software; the models and the thresholds in force."""
    local = pen.local
    info = _table(
        [
            ["Line", data.line, "Generated", local(data.generated_at)],
            ["Station(s)", ", ".join(data.stations) or "-", "Software", ", ".join(data.software) or "-"],
            ["Camera(s)", ", ".join(data.cameras) or "-", "Recipe(s)", ", ".join(data.recipes) or "-"],
        ],
        widths=(25 * mm, 60 * mm, 25 * mm, 64 * mm),
        font=8,
    )
    model_rows = [["Model", "Kind", "sha256", "Model thresholds (OK below / NG at)"]] + [
        [
            f"{m['name']} v{m['version']}",
            m["kind"],
            m["sha256"][:12],
            f"{m['thresholds']['ok_below']:.4g} / {m['thresholds']['ng_at']:.4g}",
        ]
        for m in data.models
    ]
    in_force = (
        "; ".join(f"OK below {t['ok_below']:.4g}, NG at {t['ng_at']:.4g}" for t in data.thresholds_in_force) or "-"
    )
    return [
        Paragraph(f"Quality report - {escape(data.window.title)}", pen.styles["Title"]),
        Paragraph(f"{local(data.window.start)} to {local(data.window.end)} ({data.tz})", pen.styles["Heading3"]),
        info,
        Spacer(1, 3 * mm),
        _table(model_rows, widths=(50 * mm, 30 * mm, 30 * mm, 64 * mm), font=8, header=True),
        Paragraph(f"Thresholds in force: {in_force}", pen.small),
        Spacer(1, 4 * mm),
    ]


def _key_figures(data: ReportData, pen: _Pen) -> list[Any]:
    """Parts per verdict, yields, throughput, production and downtime."""
    figures = _table(
        [
            ["Inspected", str(data.inspected), "Yield", _pct(data.yield_pct)],
            ["OK", str(data.ok), "First-pass yield", _pct(data.first_pass_yield_pct)],
            ["NG", str(data.ng), "Parts/min (production time)", f"{data.parts_per_min:.1f}"],
            [
                "REVIEW",
                str(data.review),
                "Production / downtime",
                f"{_minutes(data.production_minutes)} / {_minutes(data.downtime_minutes)}",
            ],
        ],
        widths=(30 * mm, 30 * mm, 55 * mm, 59 * mm),
        font=10,
    )
    note = Paragraph(
        "Yield counts OK parts and parts an engineer relabelled OK; "
        "first-pass yield the station's own OK verdicts. "
        "Downtime is the time of the report with no run going.",
        pen.small,
    )
    story = [pen.heading("Key figures"), figures, note]
    if data.inspected == 0:
        story.append(pen.body("No parts were inspected in this period."))
    return story


def _stations(data: ReportData, pen: _Pen) -> list[Any]:
    """Parts and first-pass yield per station, where the report covers more than one."""
    if len(data.per_station) <= 1:
        return []
    rows = [["Line", "Station", "Parts", "OK", "NG", "REVIEW", "First-pass yield"]] + [
        [
            r["line"],
            r["station"],
            str(r["parts"]),
            str(r["ok"]),
            str(r["ng"]),
            str(r["review"]),
            _pct(r["yield_pct"]),
        ]
        for r in data.per_station
    ]
    widths = (35 * mm, 35 * mm, 20 * mm, 20 * mm, 20 * mm, 20 * mm, 24 * mm)
    return [pen.heading("Stations"), _table(rows, widths=widths, font=9, header=True)]


def _charts(data: ReportData, pen: _Pen) -> list[Any]:
    """The NG Pareto, the p-chart with the hours outside its limits, and the score histogram."""
    story = [
        pen.heading("NG Pareto by defect class"),
        _pareto(data) if data.pareto else pen.body("No NG parts."),
        KeepTogether(
            [
                pen.heading("NG rate per hour (p-chart, 3-sigma limits)"),
                _p_chart(data, pen.local) if data.hours else pen.body("No parts."),
            ]
        ),
    ]
    if data.hours:
        flagged = [h for h in data.hours if h.out_of_control]
        outside = ", ".join(f"{pen.local(h.start, '%H:%M')} ({100 * h.p:.1f} %)" for h in flagged) or "none"
        story.append(
            Paragraph(
                f"Mean NG rate p = {100 * data.p_bar:.2f} %. Hours outside the control limits: {outside}.",
                pen.small,
            )
        )
    story.append(
        KeepTogether([pen.heading("Score histogram"), _histogram(data) if data.histogram else pen.body("No scores.")])
    )
    return story


def _relabel_outcomes(data: ReportData, pen: _Pen) -> list[Any]:
    """What the engineers' relabels say of the station's verdicts."""
    story = [pen.heading("Relabel outcomes")]
    r = data.relabels
    if not r:
        return [*story, pen.body("No relabels are recorded for this period.")]
    table = _table(
        [
            ["Confirmed NG", str(r["confirmed_ng"]), "False rejects (overkill)", str(r["false_rejects"])],
            ["Escapes found", str(r["escapes_found"]), "Relabelled parts", str(r["relabelled"])],
            ["REVIEW to OK", str(r["review_to_ok"]), "REVIEW to NG", str(r["review_to_ng"])],
        ],
        widths=(30 * mm, 30 * mm, 55 * mm, 59 * mm),
        font=10,
    )
    return [
        *story,
        table,
        Paragraph("By each relabelled part's latest label against the station's verdict.", pen.small),
    ]


def _worst_rejects(data: ReportData, pen: _Pen) -> list[Any]:
    return [
        pen.heading(f"Worst rejects (highest scores, {len(data.worst)} shown)"),
        _worst(data, pen.local, pen.small) if data.worst else pen.body("No rejects."),
    ]


def _event_log(data: ReportData, pen: _Pen) -> list[Any]:
    if not data.events:
        return [pen.heading("Event log"), pen.body("No events.")]
    rows = [["Time", "Level", "Kind", "Message"]] + [
        [
            pen.local(e["ts"], "%H:%M:%S"),
            e["level"] + (" (ack.)" if e["acknowledged_at"] else ""),
            e["kind"],
            Paragraph(escape(e["message"]), pen.small),
        ]
        for e in data.events
    ]
    return [
        pen.heading("Event log"),
        _table(rows, widths=(18 * mm, 22 * mm, 25 * mm, 109 * mm), font=8, header=True),
    ]


def _signature() -> list[Any]:
    """The QA approval line at the end."""
    underline = [("LINEBELOW", (1, 0), (1, 0), 0.8, colors.black), ("LINEBELOW", (3, 0), (3, 0), 0.8, colors.black)]
    return [
        Spacer(1, 14 * mm),
        _table(
            [["Checked and approved (QA):", "", "Date:", ""]],
            widths=(45 * mm, 70 * mm, 15 * mm, 44 * mm),
            font=10,
            lines=underline,
        ),
    ]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def _minutes(m: float) -> str:
    return f"{m * 60:.0f} s" if m < 1 else f"{m:.1f} min" if m < 100 else f"{m:.0f} min"


def _local(tz: dt.tzinfo) -> _LocalTime:
    def fmt(t: dt.datetime, pattern: str = "%Y-%m-%d %H:%M") -> str:
        return t.replace(tzinfo=dt.UTC).astimezone(tz).strftime(pattern)

    return fmt


# A reportlab table style command: its name, the first and last cell, then its values.
_TableCommand = tuple[Any, ...]


def _table(
    rows: list[list[Any]],
    *,
    widths: tuple[float, ...],
    font: int,
    header: bool = False,
    lines: list[_TableCommand] | None = None,
) -> Table:
    t = Table(rows, colWidths=widths)
    style: list[_TableCommand] = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", font),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", font), ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey)]
    else:
        style += [("FONT", (0, 0), (0, -1), "Helvetica-Bold", font), ("FONT", (2, 0), (2, -1), "Helvetica-Bold", font)]
    t.setStyle(TableStyle(style + (lines or [])))
    return t


def _pareto(data: ReportData) -> Drawing:
    """NG parts per defect class as bars, most first, with their cumulative share."""
    h, left, bottom = 55 * mm, 25 * mm, 12 * mm
    d = Drawing(WIDTH, h)
    top = max(n for _, n in data.pareto)
    total = sum(n for _, n in data.pareto)
    w = (WIDTH - left - 5 * mm) / len(data.pareto)
    scale = (h - bottom - 6 * mm) / top
    d.add(Line(left, bottom, WIDTH - 5 * mm, bottom, strokeColor=colors.black))
    cumulative = 0
    previous = None
    for i, (cls, n) in enumerate(data.pareto):
        x = left + i * w
        d.add(Rect(x + 0.15 * w, bottom, 0.7 * w, n * scale, fillColor=NG_RED, strokeColor=None))
        d.add(String(x + w / 2, bottom + n * scale + 1.5, str(n), fontSize=7, textAnchor="middle"))
        d.add(String(x + w / 2, bottom - 9, cls[:18], fontSize=7, textAnchor="middle"))
        cumulative += n
        point = (x + w / 2, bottom + (h - bottom - 6 * mm) * cumulative / total)
        if previous:
            d.add(Line(*previous, *point, strokeColor=BLUE))
        d.add(Circle(*point, 1.5, fillColor=BLUE, strokeColor=None))
        previous = point
    d.add(String(2, h - 8, "NG parts", fontSize=7))
    d.add(String(WIDTH - 5 * mm, h - 8, "cumulative share (blue)", fontSize=7, textAnchor="end", fillColor=BLUE))
    return d


def _p_chart(data: ReportData, local: _LocalTime) -> Drawing:
    """The NG rate per hour with each hour's 3-sigma limits and the mean."""
    h, left, bottom = 60 * mm, 18 * mm, 12 * mm
    d = Drawing(WIDTH, h)
    top = max([h_.ucl for h_ in data.hours if h_.parts] + [h_.p for h_ in data.hours] + [0.01]) * 1.1
    n = len(data.hours)
    span = WIDTH - left - 5 * mm

    def x_of(i: int) -> float:
        return float(left + (i + 0.5) * span / n)

    def y_of(p: float) -> float:
        return float(bottom + (h - bottom - 5 * mm) * p / top)

    d.add(Line(left, bottom, left + span, bottom))
    d.add(Line(left, bottom, left, h - 5 * mm))
    for frac in (0, 0.5, 1.0):
        d.add(
            String(
                left - 2, y_of(top * frac / 1.1) - 2, f"{100 * top * frac / 1.1:.1f} %", fontSize=6, textAnchor="end"
            )
        )
    d.add(Line(left, y_of(data.p_bar), left + span, y_of(data.p_bar), strokeColor=colors.green, strokeDashArray=[3, 2]))
    prev = None
    for i, pt in enumerate(data.hours):
        x = x_of(i)
        if n <= 24 or i % max(1, n // 12) == 0:
            d.add(String(x, bottom - 9, local(pt.start, "%H:%M"), fontSize=6, textAnchor="middle"))
        if pt.parts == 0:  # no parts that hour: no point, and the line breaks
            prev = None
            continue
        tick = span / n * 0.4
        for limit in (pt.ucl, pt.lcl):
            d.add(Line(x - tick, y_of(limit), x + tick, y_of(limit), strokeColor=NG_RED, strokeWidth=0.6))
        point = (x, y_of(pt.p))
        if prev:
            d.add(Line(*prev, *point, strokeColor=BLUE))
        d.add(
            Circle(
                *point,
                2.2 if pt.out_of_control else 1.5,
                fillColor=NG_RED if pt.out_of_control else BLUE,
                strokeColor=None,
            )
        )
        prev = point
    d.add(
        String(
            left + span,
            h - 4 * mm,
            "points: NG rate per hour (red: outside limits); red ticks: 3-sigma limits; green: mean",
            fontSize=6,
            textAnchor="end",
            fillColor=GREY,
        )
    )
    return d


def _histogram(data: ReportData) -> Drawing:
    """The scores' histogram with the thresholds in force drawn over it."""
    h, left, bottom = 55 * mm, 15 * mm, 12 * mm
    d = Drawing(WIDTH, h)
    lo, hi = data.histogram[0][0], data.histogram[-1][1]
    top = max(n for _, _, n in data.histogram) or 1
    span = WIDTH - left - 5 * mm

    def x_of(v: float) -> float:
        return float(left + span * (v - lo) / (hi - lo) if hi > lo else left)

    for a, b, n in data.histogram:
        d.add(
            Rect(
                x_of(a),
                bottom,
                max(0.5, x_of(b) - x_of(a) - 0.5),
                (h - bottom - 8 * mm) * n / top,
                fillColor=BLUE,
                strokeColor=None,
            )
        )
    d.add(Line(left, bottom, left + span, bottom))
    for v in (lo, (lo + hi) / 2, hi):
        d.add(String(x_of(v), bottom - 9, f"{v:.3g}", fontSize=7, textAnchor="middle"))
    d.add(String(2, h - 8, f"parts (most in one bin: {top})", fontSize=7))
    for t in data.thresholds_in_force:
        for row, (value, name, colour) in enumerate(
            ((t["ok_below"], "OK below", colors.green), (t["ng_at"], "NG at", NG_RED))
        ):
            if value is not None and lo <= value <= hi:
                d.add(Line(x_of(value), bottom, x_of(value), h - 6 * mm, strokeColor=colour, strokeWidth=1.2))
                d.add(
                    String(
                        x_of(value) + 2, h - 6 * mm + 1 - 8 * row, f"{name} {value:.4g}", fontSize=7, fillColor=colour
                    )
                )
            elif value is not None:
                d.add(
                    String(
                        left + span,
                        h - 6 * mm - (8 if name == "NG at" else 0),
                        f"{name} {value:.3g} (off the scale)",
                        fontSize=7,
                        fillColor=colour,
                        textAnchor="end",
                    )
                )
    return d


def _worst(data: ReportData, local: _LocalTime, style: ParagraphStyle) -> Table:
    """Three to a row: each thumbnail (with its defect outline) above its verdict, time, score, classes and id."""
    cells = []
    for r in data.worst:
        thumb = _thumbnail(r["image"], r["mask"], r["verdict"])
        score = "n/a" if r["score"] is None else f"{r['score']:.4g}"
        caption = Paragraph(
            f"<b>{r['verdict']}</b> {local(r['ts'], '%H:%M:%S')} score {score}<br/>"
            f"{escape(', '.join(r['classes']) or 'no class')}<br/>{r['part_id']}",
            style,
        )
        missing = (
            "image not kept"
            if not r["image_path"]
            else "image at its station"
            if r["image"] is None
            else "image not found"
        )
        cell = Table(
            [[thumb if thumb is not None else Paragraph(missing, style)], [caption]], colWidths=(WIDTH / 3 - 4 * mm,)
        )
        cell.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1)]))
        cells.append(cell)
    cells += [""] * (-len(cells) % 3)
    t = Table([cells[i : i + 3] for i in range(0, len(cells), 3)], colWidths=(WIDTH / 3,) * 3)
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    return t


def _thumbnail(image: Path | None, mask: Path | None, verdict: str) -> Image | None:
    rgb = recorded_part(image, mask, verdict)
    if rgb is None:
        return None
    w = WIDTH / 3 - 4 * mm
    scale = min(1.0, 480 / rgb.shape[1])
    small = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None
    return Image(io.BytesIO(buf.tobytes()), width=w, height=w * small.shape[0] / small.shape[1])
