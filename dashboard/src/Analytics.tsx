// The analytics page: figures against the previous period, time series, the leaderboard
// across creators, a creator's drill-down and CSV exports (docs/analytics.md).
import { useCallback, useEffect, useId, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./analytics.css";
import type { Credentials } from "./api";
import { api, ApiError, errorText } from "./api";
import type { components } from "./schema";
import { useTheme } from "./theme";
import type { CreatorState } from "./types";

// --- the API's answers (GET /api/analytics/...), named from the generated OpenAPI types ---------
type Schemas = components["schemas"];
type Figure = Schemas["MetricValue"];
type SummaryOut = Schemas["AnalyticsSummary"];
type SeriesOut = Schemas["AnalyticsSeries"];
type LeaderboardOut = Schemas["AnalyticsLeaderboard"];
type Interval = SeriesOut["interval"];
type MetricName = Schemas["MetricOut"]["name"];

// --- what the page knows about each metric ------------------------------------------------------
type Kind = "sum" | "max" | "avg";
interface Metric { label: string; kind: Kind; unit?: "minutes"; neutral?: boolean; viewers?: boolean }
// every metric the API knows, no more, no fewer (the compiler holds this to the OpenAPI enum)
const METRICS: Record<MetricName, Metric> = {
  follows: { label: "Follows", kind: "sum" },
  subs: { label: "New subs", kind: "sum" },
  gifted_subs: { label: "Gifted subs", kind: "sum" },
  resubs: { label: "Resubs", kind: "sum" },
  bits: { label: "Bits", kind: "sum" },
  raids_in: { label: "Raids in", kind: "sum" },
  live_minutes: { label: "Live hours", kind: "sum", unit: "minutes" },
  viewers_peak: { label: "Peak viewers", kind: "max", viewers: true },
  viewers_avg: { label: "Average viewers", kind: "avg", viewers: true },
  chat_messages: { label: "Chat messages", kind: "sum" },
  hype_trains: { label: "Hype trains", kind: "sum" },
  ad_break_minutes: { label: "Ad-break minutes", kind: "sum", neutral: true },
  subs_tier1: { label: "Tier 1 subs", kind: "sum" },
  subs_tier2: { label: "Tier 2 subs", kind: "sum" },
  subs_tier3: { label: "Tier 3 subs", kind: "sum" },
  raids_in_viewers: { label: "Viewers raided in", kind: "sum" },
  raids_out: { label: "Raids out", kind: "sum", neutral: true },
  raids_out_viewers: { label: "Viewers raided out", kind: "sum", neutral: true },
  hype_train_level: { label: "Top hype train level", kind: "max" },
  polls: { label: "Polls", kind: "sum", neutral: true },
  predictions: { label: "Predictions", kind: "sum", neutral: true },
  bans: { label: "Bans", kind: "sum", neutral: true },
  timeouts: { label: "Timeouts", kind: "sum", neutral: true },
};
const CARDS: MetricName[] = ["follows", "subs", "gifted_subs", "bits", "raids_in", "live_minutes", "viewers_peak", "viewers_avg", "chat_messages", "resubs", "hype_trains", "ad_break_minutes"];
const MORE = (Object.keys(METRICS) as MetricName[]).filter((m) => !CARDS.includes(m));
const DEFAULT_CHARTS: MetricName[] = ["follows", "subs", "bits", "viewers_avg"];
const MAX_CHARTS = 6;
const MAX_POINTS = 2000; // the API's limit per series
const LIVE_MS = 5000; // at most one refetch per this, while events arrive
const TICK_MS = 60_000; // the current bucket moves on without events too

type PeriodKind = "24h" | "7d" | "30d" | "custom";
const PERIODS: { kind: PeriodKind; label: string }[] = [
  { kind: "24h", label: "24 hours" }, { kind: "7d", label: "7 days" }, { kind: "30d", label: "30 days" }, { kind: "custom", label: "Custom" },
];
const INTERVALS: { value: Interval; label: string; per: string; seconds: number }[] = [
  { value: "5m", label: "5 minutes", per: "per 5 minutes", seconds: 300 },
  { value: "1h", label: "Hourly", per: "per hour", seconds: 3600 },
  { value: "1d", label: "Daily", per: "per day", seconds: 86400 },
];
const DAY = 86_400_000;
// a counted metric's axis steps: whole numbers only
const WHOLE_STEPS = [1, 2, 5].flatMap((n) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7].map((p) => n * p)).sort((a, b) => a - b);

// `#/analytics` and `#/analytics/<creator id>`: null when the address is not this page's
export function analyticsInHash(): { creator: string | null } | null {
  const m = /^#\/analytics(?:\/([0-9a-fA-F-]{36}))?\/?$/.exec(window.location.hash);
  return m ? { creator: m[1] ?? null } : null;
}

function isoDay(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
function nextDay(day: string): string {
  const [y, m, d] = day.split("-").map(Number);
  return isoDay(new Date(y, m - 1, d + 1));
}
function spanDays(from: string, to: string): number {
  return (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY + 1; // `to` inclusive
}

interface Period { kind: PeriodKind; from: string; to: string } // from/to: the custom range, `to` inclusive

function rangeQuery(p: Period): string {
  return p.kind === "custom" ? `from=${p.from}&to=${nextDay(p.to)}` : `period=${p.kind}`;
}
function periodMs(p: Period): number {
  if (p.kind === "custom") return spanDays(p.from, p.to) * DAY;
  return { "24h": 1, "7d": 7, "30d": 30 }[p.kind] * DAY;
}
// a sensible interval: hourly up to two weeks, then daily
function defaultInterval(p: Period): Interval {
  return periodMs(p) <= 14 * DAY ? "1h" : "1d";
}
function fits(p: Period, i: Interval): boolean {
  const seconds = INTERVALS.find((x) => x.value === i)!.seconds;
  return periodMs(p) / 1000 / seconds <= MAX_POINTS;
}

// --- numbers as a person reads them ------------------------------------------------------------
const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function formatValue(metric: MetricName, v: number): string {
  const m = METRICS[metric];
  if (m.unit === "minutes") return v > 0 && v < 60 ? `${whole.format(v)} min` : `${oneDecimal.format(v / 60)} h`;
  if (metric === "ad_break_minutes") return oneDecimal.format(v);
  if (m.kind === "avg") return v < 10 ? oneDecimal.format(v) : whole.format(v);
  return whole.format(v);
}
function formatDiff(metric: MetricName, d: number): string {
  const sign = d > 0 ? "+" : "−";
  return `${sign}${formatValue(metric, Math.abs(d))}`;
}

interface Delta { dir: "up" | "down" | "flat" | "none"; text: string; words: string }
function delta(metric: MetricName, f: Figure | undefined): Delta {
  if (!f || f.value === null) return { dir: "none", text: "", words: "" };
  if (f.previous === null) return { dir: "none", text: "", words: "previous period: no pulse samples" };
  const d = f.value - f.previous;
  if (Math.abs(d) < 1e-9) return { dir: "flat", text: "no change", words: "no change" };
  const pct = f.previous !== 0 ? ` (${d > 0 ? "+" : "−"}${whole.format(Math.abs((d / f.previous) * 100))}%)` : "";
  return { dir: d > 0 ? "up" : "down", text: `${formatDiff(metric, d)}${pct}`, words: d > 0 ? "up" : "down" };
}

function fmtZone(tz: string, opts: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  try {
    return new Intl.DateTimeFormat(undefined, { ...opts, timeZone: tz });
  } catch {
    return new Intl.DateTimeFormat(undefined, { ...opts, timeZone: "UTC" });
  }
}
function rangeText(tz: string, start: string, end: string): string {
  const f = fmtZone(tz, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  return f.formatRange(new Date(start), new Date(end));
}

// --- CSV export: the same token as every API call, then a download from a Blob -------------
async function download(auth: Credentials, path: string, fallback: string): Promise<void> {
  const get = (token: string) => fetch(`/api${path}`, { headers: { Authorization: `Bearer ${token}` } });
  let response = await get(typeof auth === "string" ? auth : auth.token());
  if (response.status === 401 && typeof auth !== "string" && (await auth.renew())) response = await get(auth.token());
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data?.error ?? "error", data?.detail);
  }
  const blob = await response.blob();
  const name = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(response.headers.get("Content-Disposition") ?? "")?.[1] ?? fallback;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = decodeURIComponent(name);
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

function ExportButton({ auth, path, fallback, label, testid }: { auth: Credentials; path: string; fallback: string; label: string; testid: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  return (
    <span className="an-export">
      <button type="button" onClick={async () => {
        setBusy(true); setError("");
        try { await download(auth, path, fallback); } catch (err) { setError(errorText(err)); } finally { setBusy(false); }
      }} disabled={busy} aria-label={label} data-testid={testid}>
        <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><path d="M8 1v9m0 0L4.5 6.5M8 10l3.5-3.5M2 12v2.5h12V12" fill="none" stroke="currentColor" strokeWidth="1.8" /></svg>
        {busy ? "Exporting…" : "CSV"}
      </button>
      {error && <span className="error" role="alert">{error}</span>}
    </span>
  );
}

// --- the pieces ----------------------------------------------------------------------------------
function Card({ metric, figure, loading }: { metric: MetricName; figure: Figure | undefined; loading: boolean }) {
  const m = METRICS[metric];
  const d = delta(metric, figure);
  const value = figure?.value ?? null;
  return (
    <li className={`an-card${m.neutral ? " neutral" : ""}`} data-testid={`card-${metric}`} data-metric={metric}>
      <span className="an-card-label">{m.label}</span>
      {value === null ? (
        <span className="an-card-value an-none" data-testid="card-value">{loading ? "…" : "—"}</span>
      ) : (
        <span className="an-card-value" data-testid="card-value">{formatValue(metric, value)}</span>
      )}
      {value === null && !loading && m.viewers && <span className="an-card-note" data-testid="card-note">no pulse samples</span>}
      {value !== null && (
        <span className="an-card-delta">
          {d.dir !== "none" && (
            <span className={`an-delta ${d.dir}`} data-testid="card-delta" data-dir={d.dir}>
              <span aria-hidden="true">{d.dir === "up" ? "▲" : d.dir === "down" ? "▼" : "="}</span>
              {d.dir !== "flat" && <span className="sr-only">{d.words}</span>} {d.text}
            </span>
          )}
          <span className="an-prev" data-testid="card-previous">
            {figure?.previous === null || figure?.previous === undefined ? d.words || "previous: —" : `previous ${formatValue(metric, figure.previous)}`}
          </span>
        </span>
      )}
    </li>
  );
}

function readVar(el: HTMLElement, name: string, fallback: string): string {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

// a #rgb / #rrggbb colour with an alpha (branding colours are hex)
function alpha(color: string, a: number): string {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color)?.[1];
  if (!hex) return color;
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${a})`;
}

function Chart({ metric, series, tz }: { metric: MetricName; series: SeriesOut; tz: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const hover = useRef<HTMLSpanElement>(null);
  const m = METRICS[metric];
  const heading = useId();
  const ys = series.series[metric] ?? [];
  const xs = useMemo(() => series.buckets.map((b) => Date.parse(b) / 1000), [series.buckets]);
  const step = INTERVALS.find((i) => i.value === series.interval)?.seconds ?? 3600;
  // a bar spans its bucket: a first bucket cut short by the range's start is drawn from where
  // a whole one would begin, clipped at the chart's edge (uPlot would otherwise size every bar
  // by the shortest gap)
  const barXs = useMemo(() => (xs.length > 1 && xs[1] - xs[0] < step ? [xs[1] - step, ...xs.slice(1)] : xs), [xs, step]);
  const xsNow = useRef(xs);
  xsNow.current = xs;
  const end = Date.parse(series.end) / 1000;
  const seen = ys.filter((y): y is number => y !== null);
  const total = m.kind === "sum" ? seen.reduce((a, b) => a + b, 0) : null;
  const top = seen.length ? Math.max(...seen) : null;
  const interval = INTERVALS.find((i) => i.value === series.interval);
  const empty = m.viewers && !seen.length;
  const shape = `${xs.length}:${xs[0]}:${series.interval}:${tz}`;
  // the canvas takes its colours once: draw again for the other theme or a new brand (App's style)
  const theme = useTheme();
  const [restyled, setRestyled] = useState(0);
  useEffect(() => {
    const watch = new MutationObserver(() => setRestyled((n) => n + 1));
    watch.observe(document.documentElement, { attributes: true, attributeFilter: ["style"] });
    const app = document.querySelector(".app");
    if (app) watch.observe(app, { attributes: true, attributeFilter: ["style"] });
    return () => watch.disconnect();
  }, []);

  useEffect(() => {
    const el = box.current;
    if (!el || empty) return;
    // the theme's and the brand's colours as styles.css and App set them (a new chart when they change)
    const accent = readVar(el, "--accent", "#16a085");
    const brand = readVar(el, "--brand", "#3b3b98");
    const axis = { stroke: readVar(el, "--muted", "#545b66"), grid: { stroke: readVar(el, "--border", "#d9dde4") }, ticks: { stroke: readVar(el, "--border", "#d9dde4") } };
    const pointFill = readVar(el, "--surface", "#ffffff");
    const bars = m.kind === "sum";
    const valueText = (v: number | null) => (v === null ? (m.viewers ? "no sample" : "—") : formatValue(metric, v));
    const when = fmtZone(tz, series.interval === "1d" ? { weekday: "short", day: "numeric", month: "short" } : { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height: 210,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      legend: { show: false },
      // the value under the cursor, beside the title (the canvas itself says nothing)
      hooks: {
        setCursor: [(u) => {
          const i = u.cursor.idx;
          if (!hover.current) return;
          hover.current.textContent = i === null || i === undefined ? ""
            : `${when.format(new Date((xsNow.current[i] ?? u.data[0][i]) * 1000))}: ${valueText(u.data[1][i] ?? null)}`;
        }],
      },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: {
        x: { time: true, range: () => [xs[0] ?? 0, end] },
        y: { range: (_u, _min, max) => [0, Math.max(bars ? 1 : 10, max * 1.1)] },
      },
      axes: [
        { ...axis },
        { ...axis, size: 60,
          ...(bars ? { incrs: WHOLE_STEPS } : {}), values: (_u, splits) => splits.map((v) => formatValue(metric, v)) },
      ],
      series: [
        {},
        bars
          ? { label: m.label, stroke: accent, fill: alpha(accent, 0.8), width: 0, paths: (u, s, i0, i1) => {
            const span = end - (xs[0] ?? end);
            const bucketPx = span > 0 ? (u.bbox.width / devicePixelRatio) * (step / span) : 4;
            return uPlot.paths.bars!({ size: [0.8, 96, Math.max(1, Math.min(96, bucketPx * 0.8))], align: 1 })(u, s, i0, i1);
          }, points: { show: false }, value: (_u, v) => valueText(v) }
          : { label: m.label, stroke: brand, fill: alpha(brand, 0.12), width: 2, spanGaps: false, points: { show: xs.length <= 60, size: 7, fill: brand }, value: (_u, v) => valueText(v) },
      ],
    };
    if (opts.cursor?.points) opts.cursor.points.fill = pointFill;
    const u = new uPlot(opts, [bars ? barXs : xs, ys as number[]], el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(300, el.clientWidth), height: 210 }));
    resize.observe(el);
    return () => { resize.disconnect(); u.destroy(); plot.current = null; };
    // a new chart when the buckets change shape; new values are set below
  }, [shape, metric, empty, theme, restyled]);
  useEffect(() => { plot.current?.setData([m.kind === "sum" ? barXs : xs, ys as number[]]); }, [xs, barXs, ys, m.kind]);

  const summary = empty
    ? "no pulse samples in this period"
    : total !== null ? `${formatValue(metric, total)} in this period${top ? `, at most ${formatValue(metric, top)} ${interval?.per ?? ""}` : ""}`
      : `highest ${top === null ? "—" : formatValue(metric, top)}`;
  return (
    <figure className="an-chart" data-testid={`chart-${metric}`} aria-labelledby={heading}>
      <figcaption id={heading}>
        <span className="an-chart-title">{m.label}</span>
        <span className="an-chart-sum" data-testid="chart-summary">{summary}</span>
        <span className="an-chart-hover" ref={hover} aria-hidden="true" />
      </figcaption>
      {empty
        ? <p className="an-chart-empty" data-testid="chart-empty">No pulse samples in this period: viewer figures come from the audience pulse while a creator is live.</p>
        : <div ref={box} className="an-plot" role="img" aria-label={`${m.label} per bucket in ${tz}: ${summary}`} />}
    </figure>
  );
}

function Leaderboard({ auth, board, metric, setMetric, onCreator, rangeQ, loading }: {
  auth: Credentials; board: LeaderboardOut | null; metric: MetricName; setMetric: (m: MetricName) => void;
  onCreator: (id: string) => void; rangeQ: string; loading: boolean;
}) {
  const id = useId();
  const rows = board?.rows ?? [];
  const max = Math.max(0, ...rows.map((r) => r.value ?? 0));
  return (
    <section className="an-panel an-board" aria-labelledby={`${id}-h`} data-testid="leaderboard">
      <div className="an-panel-head">
        <h3 id={`${id}-h`}>Leaderboard</h3>
        <label className="an-field">
          <span>Ranked by</span>
          <select value={metric} onChange={(e) => setMetric(e.target.value as MetricName)} data-testid="leaderboard-metric">
            {Object.entries(METRICS).map(([k, m]) => <option key={k} value={k}>{m.label}</option>)}
          </select>
        </label>
        <ExportButton auth={auth} path={`/analytics/leaderboard.csv?metric=${metric}&${rangeQ}&limit=200`} fallback="leaderboard.csv"
          label="Export the leaderboard as CSV" testid="export-leaderboard" />
      </div>
      {!board && loading && <p className="muted">Loading…</p>}
      {board && !rows.length && <p className="muted" data-testid="leaderboard-empty">No creators yet: add one under Settings &amp; admin.</p>}
      {rows.length > 0 && (
        <table className="an-table">
          <thead>
            <tr><th scope="col" className="num">#</th><th scope="col">Creator</th><th scope="col" className="num">{METRICS[metric].label}</th><th scope="col" className="num">Change</th></tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const d = delta(metric, { value: r.value, previous: r.previous });
              return (
                <tr key={r.creator_id} data-testid="leaderboard-row" data-creator={r.creator_id}>
                  <td className="num rank">{r.rank}</td>
                  <td>
                    <a href={`#/analytics/${r.creator_id}`} className="an-creator" onClick={(e) => { e.preventDefault(); onCreator(r.creator_id); }}
                      data-testid="leaderboard-creator">{r.display_name}</a>
                    <span className="an-login">{r.twitch_login}</span>
                    <span className="an-bar" aria-hidden="true"><span style={{ width: `${max > 0 && r.value ? (r.value / max) * 100 : 0}%` }} /></span>
                  </td>
                  <td className="num an-val" data-testid="leaderboard-value">{r.value === null ? <span className="muted">no pulse samples</span> : formatValue(metric, r.value)}</td>
                  <td className="num">
                    {d.dir === "none" ? <span className="muted">{d.words ? "—" : ""}</span> : (
                      <span className={`an-delta ${d.dir}`}>
                        <span aria-hidden="true">{d.dir === "up" ? "▲" : d.dir === "down" ? "▼" : "="}</span>
                        {d.dir !== "flat" && <span className="sr-only">{d.words}</span>} {d.text}
                      </span>
                    )}
                    <span className="an-prev-cell">prev {r.previous === null ? "—" : formatValue(metric, r.previous)}</span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

// --- the page ------------------------------------------------------------------------------------
export function Analytics({ auth, creators, lastSeq, lastPulse }: {
  auth: Credentials; creators: Map<string, CreatorState>; lastSeq: number | null;
  lastPulse: string | null; // when the audience pulse's last `viewers` message was taken
}) {
  const [creator, setCreator] = useState<string | null>(() => analyticsInHash()?.creator ?? null);
  useEffect(() => {
    const follow = () => { const a = analyticsInHash(); if (a) setCreator(a.creator); };
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);
  const goCreator = useCallback((id: string | null) => {
    window.location.hash = id ? `/analytics/${id}` : "/analytics";
    setCreator(id);
  }, []);
  // another scope starts at the top, with focus on its heading (what opened it may be gone)
  const page = useRef<HTMLElement>(null);
  const title = useRef<HTMLHeadingElement>(null);
  const shown = useRef(creator);
  useEffect(() => {
    if (shown.current === creator) return;
    shown.current = creator;
    page.current?.scrollTo({ top: 0 });
    title.current?.focus({ preventScroll: true });
  }, [creator]);

  const today = isoDay(new Date());
  const [period, setPeriod] = useState<Period>({ kind: "7d", from: isoDay(new Date(Date.now() - 6 * DAY)), to: today });
  const [draft, setDraft] = useState({ from: period.from, to: period.to });
  const [customError, setCustomError] = useState("");
  const [interval, setInterval_] = useState<Interval>(() => defaultInterval(period));
  const [charts, setCharts] = useState<MetricName[]>(DEFAULT_CHARTS);
  const [boardMetric, setBoardMetric] = useState<MetricName>("follows");
  const [summary, setSummary] = useState<SummaryOut | null>(null);
  const [series, setSeries] = useState<SeriesOut | null>(null);
  const [board, setBoard] = useState<LeaderboardOut | null>(null);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const [version, setVersion] = useState(0); // bumped to fetch again (live, the clock)
  const [updated, setUpdated] = useState<Date | null>(null);
  const lastLoad = useRef(0);
  const pending = useRef(0);
  const heading = useId();

  const rangeQ = rangeQuery(period);
  const scopeQ = creator ? `&creator_id=${creator}` : "";
  const live = period.kind !== "custom" || Date.parse(`${nextDay(period.to)}T00:00:00`) > Date.now() - DAY;

  const choosePeriod = (kind: PeriodKind) => {
    if (kind === "custom") { setPeriod({ ...period, kind }); setDraft({ from: period.from, to: period.to }); return; }
    const next = { ...period, kind };
    setPeriod(next);
    setInterval_(defaultInterval(next));
  };
  const applyCustom = (e: React.FormEvent) => {
    e.preventDefault();
    if (!draft.from || !draft.to) { setCustomError("Choose both dates."); return; }
    if (draft.to < draft.from) { setCustomError("The end date is before the start date."); return; }
    if (spanDays(draft.from, draft.to) > 400) { setCustomError("At most 400 days."); return; }
    setCustomError("");
    const next: Period = { kind: "custom", from: draft.from, to: draft.to };
    setPeriod(next);
    setInterval_(defaultInterval(next));
  };

  // one load per what is shown; an answer to an older question is dropped
  useEffect(() => {
    let stale = false;
    lastLoad.current = Date.now();
    setLoading(true);
    const chartQ = charts.map((m) => `metric=${m}`).join("&");
    const effectiveInterval = fits(period, interval) ? interval : defaultInterval(period);
    Promise.all([
      api<SummaryOut>(auth, "GET", `/analytics/summary?${rangeQ}${scopeQ}`),
      charts.length ? api<SeriesOut>(auth, "GET", `/analytics/series?${chartQ}&interval=${effectiveInterval}&${rangeQ}${scopeQ}`) : Promise.resolve(null),
      creator ? Promise.resolve(null) : api<LeaderboardOut>(auth, "GET", `/analytics/leaderboard?metric=${boardMetric}&${rangeQ}&limit=50`),
    ]).then(([s, t, b]) => {
      if (stale) return;
      setSummary(s); setSeries(t); if (b) setBoard(b);
      setError(""); setUpdated(new Date());
    }).catch((err: unknown) => {
      if (!stale) setError(errorText(err));
    }).finally(() => { if (!stale) setLoading(false); });
    return () => { stale = true; };
  }, [auth, rangeQ, scopeQ, creator, charts, interval, boardMetric, version, period]);

  // live: the relay's events and the pulse's viewer samples bring a refetch, at most one per
  // LIVE_MS
  const liveKey = `${lastSeq ?? ""}|${lastPulse ?? ""}`;
  const firstKey = useRef(liveKey);
  useEffect(() => {
    if (liveKey === firstKey.current || !live || pending.current) return;
    pending.current = window.setTimeout(() => { pending.current = 0; setVersion((v) => v + 1); },
      Math.max(0, lastLoad.current + LIVE_MS - Date.now()));
  }, [liveKey, live]);
  useEffect(() => () => window.clearTimeout(pending.current), []);
  useEffect(() => {
    if (!live) return;
    const t = window.setInterval(() => setVersion((v) => v + 1), TICK_MS);
    return () => window.clearInterval(t);
  }, [live]);

  const tz = summary?.time_zone ?? series?.time_zone ?? "UTC";
  const who = creator ? creators.get(creator) : undefined;
  const intervalShown = fits(period, interval) ? interval : defaultInterval(period);
  const toggleChart = (m: MetricName) => setCharts((c) => (c.includes(m) ? c.filter((x) => x !== m) : c.length >= MAX_CHARTS ? c : [...c, m]));
  const roster = [...creators.values()].filter((c) => c.login).sort((a, b) => a.display_name.localeCompare(b.display_name));

  return (
    <main className="an-page" ref={page} aria-labelledby={heading} data-testid="analytics">
      <div className="an-head">
        <div className="an-title">
          {creator && (
            <a href="#/analytics" className="an-back" onClick={(e) => { e.preventDefault(); goCreator(null); }} data-testid="analytics-back">
              <span aria-hidden="true">←</span> All creators
            </a>
          )}
          <h2 id={heading} ref={title} tabIndex={-1} data-testid="analytics-heading">
            {creator ? <>{who?.display_name ?? "Creator"} <span className="an-sub">{who?.login ?? ""}</span></> : "Analytics"}
          </h2>
          <p className="an-range" data-testid="analytics-range">
            {summary ? <>{rangeText(tz, summary.start, summary.end)} <span className="an-vs">vs {rangeText(tz, summary.previous_start, summary.previous_end)}</span></> : "…"}
          </p>
        </div>
        <div className="an-controls">
          <fieldset className="an-periods">
            <legend className="sr-only">Period</legend>
            {PERIODS.map((p) => (
              <label key={p.kind} className={period.kind === p.kind ? "on" : ""}>
                <input type="radio" name="an-period" value={p.kind} checked={period.kind === p.kind} onChange={() => choosePeriod(p.kind)}
                  data-testid={`period-${p.kind}`} />
                {p.label}
              </label>
            ))}
          </fieldset>
          {period.kind === "custom" && (
            <form className="an-custom" onSubmit={applyCustom} data-testid="custom-range">
              <label className="an-field"><span>From</span>
                <input type="date" value={draft.from} max={today} onChange={(e) => setDraft({ ...draft, from: e.target.value })} data-testid="custom-from" />
              </label>
              <label className="an-field"><span>To (inclusive)</span>
                <input type="date" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} data-testid="custom-to" />
              </label>
              <button type="submit" data-testid="custom-apply">Apply</button>
              {customError && <span className="error" role="alert">{customError}</span>}
            </form>
          )}
          <label className="an-field">
            <span>Creator</span>
            <select value={creator ?? ""} onChange={(e) => goCreator(e.target.value || null)} data-testid="analytics-creator">
              <option value="">All creators</option>
              {creator && !who && <option value={creator}>Unknown creator</option>}
              {roster.map((c) => <option key={c.creator_id} value={c.creator_id}>{c.display_name}</option>)}
            </select>
          </label>
          <span className="an-zone" data-testid="analytics-zone" title="The company's time zone (Settings & admin)">
            <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" strokeWidth="1.5" /><path d="M8 4v4l2.5 2" fill="none" stroke="currentColor" strokeWidth="1.5" /></svg>
            Days in {tz}
          </span>
        </div>
      </div>

      {error && <p className="banner an-error" role="alert" data-testid="analytics-error">{error}</p>}

      <section className="an-figures" aria-label="Figures against the previous period">
        <div className="an-section-head">
          <h3>Figures <span className="muted">against the previous period</span></h3>
          <span className="an-updated" data-testid="analytics-updated">
            {live && <span className="an-live-dot" aria-hidden="true" />}
            {updated ? `${live ? "Live · " : ""}updated ${fmtZone(tz, { timeStyle: "medium" }).format(updated)}` : "Loading…"}
          </span>
          <ExportButton auth={auth} path={`/analytics/summary.csv?${rangeQ}${scopeQ}`} fallback="summary.csv" label="Export the figures as CSV" testid="export-summary" />
        </div>
        <ul className="an-cards" data-testid="cards">
          {CARDS.map((m) => <Card key={m} metric={m} figure={summary?.metrics[m]} loading={loading && !summary} />)}
        </ul>
        <details className="an-more">
          <summary data-testid="more-figures">All {Object.keys(METRICS).length} figures</summary>
          <table className="an-table an-more-table">
            <thead><tr><th scope="col">Figure</th><th scope="col" className="num">This period</th><th scope="col" className="num">Previous period</th><th scope="col" className="num">Change</th></tr></thead>
            <tbody>
              {[...CARDS, ...MORE].map((m) => {
                const f = summary?.metrics[m];
                const d = delta(m, f);
                return (
                  <tr key={m} data-testid={`figure-${m}`}>
                    <th scope="row">{METRICS[m].label}</th>
                    <td className="num">{f?.value === null || f?.value === undefined ? (METRICS[m].viewers ? "no pulse samples" : "—") : formatValue(m, f.value)}</td>
                    <td className="num">{f?.previous === null || f?.previous === undefined ? (METRICS[m].viewers ? "no pulse samples" : "—") : formatValue(m, f.previous)}</td>
                    <td className="num">{d.dir === "none" ? "" : <>{d.dir !== "flat" && <span className="sr-only">{d.words} </span>}{d.text}</>}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </details>
      </section>

      <div className={`an-lower${creator ? " solo" : ""}`}>
        <section className="an-panel an-charts" aria-labelledby={`${heading}-c`}>
          <div className="an-panel-head">
            <h3 id={`${heading}-c`}>Over time</h3>
            <fieldset className="an-periods an-intervals" data-testid="interval">
              <legend className="sr-only">Interval</legend>
              {INTERVALS.map((i) => {
                const ok = fits(period, i.value);
                return (
                  <label key={i.value} className={`${intervalShown === i.value ? "on" : ""}${ok ? "" : " off"}`}
                    title={ok ? `One point ${i.per}` : `Over ${whole.format(MAX_POINTS)} points for this period`}>
                    <input type="radio" name="an-interval" value={i.value} checked={intervalShown === i.value} disabled={!ok}
                      onChange={() => setInterval_(i.value)} data-testid={`interval-${i.value}`} />
                    {i.label}
                  </label>
                );
              })}
            </fieldset>
            <ExportButton auth={auth} path={`/analytics/series.csv?${charts.map((m) => `metric=${m}`).join("&")}&interval=${intervalShown}&${rangeQ}${scopeQ}`}
              fallback="series.csv" label="Export the charted series as CSV" testid="export-series" />
          </div>
          <fieldset className="an-picker">
            <legend>Charts <span className="muted">(up to {MAX_CHARTS})</span></legend>
            {CARDS.map((m) => (
              <label key={m} className={charts.includes(m) ? "on" : ""}>
                <input type="checkbox" checked={charts.includes(m)} onChange={() => toggleChart(m)}
                  disabled={!charts.includes(m) && charts.length >= MAX_CHARTS} data-testid={`chart-toggle-${m}`} />
                {METRICS[m].label}
              </label>
            ))}
          </fieldset>
          {!charts.length && <p className="muted">Choose a figure above to chart it.</p>}
          <div className="an-chart-grid">
            {series && charts.filter((m) => m in series.series).map((m) => <Chart key={m} metric={m} series={series} tz={tz} />)}
          </div>
        </section>
        {!creator && (
          <Leaderboard auth={auth} board={board} metric={boardMetric} setMetric={setBoardMetric} onCreator={goCreator} rangeQ={rangeQ} loading={loading} />
        )}
      </div>
    </main>
  );
}
