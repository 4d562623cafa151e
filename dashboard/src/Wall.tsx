// The wall: one tile per creator, a summary strip, sort/group/density, virtualized rows,
// and the keyboard. The TV mode (Tv.tsx) reuses the tile, the strip and the sort.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { KeyboardEvent as ReactKeyboardEvent } from "react";
import { linkOf } from "./consent";
import { IncidentBadge, SeverityIcon } from "./Incidents";
import type { CreatorState, FeedEvent, Incident, Severity, ViewerSample } from "./types";
import { severityRank } from "./types";
import { short } from "./words";
import "./wall.css";

const SPARK_SECONDS = 3600;
const HIGHLIGHT_MS = 90_000;
const PREVIEW_BUCKET_MS = 5 * 60_000; // Twitch refreshes its preview images about this often
const HEADING_EM = 2.6;
const DENSITY_KEY = "controlroom.wall.density";
const SORT_KEY = "controlroom.wall.sort";
const GROUP_KEY = "controlroom.wall.group";
const NO_LABEL = "No label";

export type Sort = "live" | "viewers" | "incidents" | "activity" | "name";
export const SORTS: { id: Sort; label: string }[] = [
  { id: "live", label: "Live first" },
  { id: "viewers", label: "Viewers" },
  { id: "incidents", label: "Incidents first" },
  { id: "activity", label: "Recent activity" },
  { id: "name", label: "Name" },
];
export type Density = "comfortable" | "dense";
const NONE: Incident[] = [];
const NO_SAMPLES: ViewerSample[] = [];
const NO_EVENTS: FeedEvent[] = [];

export interface WallProps {
  creators: CreatorState[];
  recent: Map<string, FeedEvent[]>;
  health: Map<string, string[]>;
  canManage: boolean;
  incidents: Map<string, Incident[]>;
  samples: Map<string, ViewerSample[]>;
  onOpenIncident: (id: string) => void;
  /** events received in the last minute (the App counts them); without it, counted from `recent` */
  eventsPerMinute: number; // counted by arrival in App (the tiles keep only five events each)
}

function stored<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
  try {
    const v = localStorage.getItem(key);
    return v && (allowed as readonly string[]).includes(v) ? (v as T) : fallback;
  } catch {
    return fallback;
  }
}
function remember(key: string, value: string): void {
  try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ }
}
export const loadDensity = () => stored<Density>(DENSITY_KEY, ["comfortable", "dense"], "comfortable");
export const loadSort = () => stored<Sort>(SORT_KEY, SORTS.map((s) => s.id), "live");

function since(iso: string | null, now: number): string {
  if (!iso) return "";
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function agoWords(iso: string, now: number): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return "just now";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  return h < 24 ? `${h}h ago` : `${Math.floor(h / 24)}d ago`;
}

export function highlightOf(e: FeedEvent): string | null {
  const s = e.summary;
  switch (e.type) {
    case "channel.raid":
      return s.outcome === "outgoing" ? null : `Raid from ${s.actor_login ?? "someone"}: ${s.amount ?? 0} viewers`;
    case "channel.hype_train.begin":
    case "channel.hype_train.progress":
      return `Hype train level ${s.level ?? 1}`;
    case "channel.subscription.gift":
      return (s.amount ?? 0) >= 5 ? `Gift bomb: ${s.amount} subs` : null;
    case "channel.ban":
      return `Ban: ${s.target_login ?? "a viewer"}${s.outcome === "timeout" ? " (timeout)" : ""}`;
    case "stream.offline":
      return "Went offline";
    case "subscription.revoked":
      return `Subscription ${s.outcome ?? "revoked"}: ${s.title ?? ""}`;
    default:
      return null;
  }
}

const count = new Intl.NumberFormat();

/** A clock for the ticking parts (uptime, ages), one per page. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** The last hour of viewers as a line, one step per pulse sample (a minute apart in
 * production), so a stream watched for ten minutes still fills the line; gaps where it was offline. */
export function Sparkline({ samples, now, width = 52, height = 20 }: { samples: ViewerSample[]; now: number; width?: number; height?: number }) {
  const start = now / 1000 - SPARK_SECONDS;
  const points = samples.filter(([t]) => t >= start);
  const values = points.map(([, v]) => v).filter((v): v is number => v !== null);
  if (!values.length) return <svg className="spark" width={width} height={height} aria-hidden="true" />;
  const max = Math.max(...values, 1);
  const min = Math.min(...values, max);
  const span = Math.max(1, max - min);
  const x = (i: number) => (points.length > 1 ? (i / (points.length - 1)) * (width - 4) : width - 4) + 2;
  const y = (v: number) => height - 2 - ((v - min) / span) * (height - 4);
  const runs: string[][] = [[]];
  points.forEach(([, v], i) => {
    if (v === null) { if (runs[runs.length - 1].length) runs.push([]); return; }
    runs[runs.length - 1].push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  });
  let lastI = points.length - 1;
  while (lastI >= 0 && points[lastI][1] === null) lastI -= 1;
  const lastV = lastI >= 0 ? points[lastI][1] : null;
  return (
    <svg className="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true" data-testid="sparkline">
      {runs.filter((r) => r.length).map((r, i) => r.length > 1
        ? <polyline key={i} points={r.join(" ")} fill="none" strokeWidth="1.6" strokeLinejoin="round" />
        : <circle key={i} cx={r[0].split(",")[0]} cy={r[0].split(",")[1]} r="1.5" />)}
      {lastV !== null && <circle className="spark-now" cx={x(lastI)} cy={y(lastV)} r="2" />}
    </svg>
  );
}

export function Viewers({ c, samples, now, spark = true, em = 16 }: { c: CreatorState; samples: ViewerSample[]; now: number; spark?: boolean; em?: number }) {
  const known = typeof c.viewers === "number";
  const trend = samples.filter(([, v]) => v !== null);
  const title = known
    ? `${count.format(c.viewers as number)} viewers${c.viewers_at ? ` at ${new Date(c.viewers_at).toLocaleTimeString()}` : ""}; the line shows the last 60 minutes`
    : c.viewers_at ? "offline at the last sample" : "no sample yet";
  return (
    <div className={`viewers${known ? "" : " unknown"}`} title={title} data-testid="viewers">
      {spark && trend.length > 0 && <Sparkline samples={samples} now={now} width={Math.round(em * 3.4)} height={Math.round(em * 0.9)} />}
      <span className="viewer-count" data-testid="viewer-count">
        {known ? <>{count.format(c.viewers as number)}<span className="unit"> viewers</span></> : "—"}
      </span>
      {!known && !c.viewers_at && <span className="unit">unavailable</span>}
    </div>
  );
}

function initials(name: string): string {
  const parts = name.replace(/[_\-.]+/g, " ").trim().split(/\s+|(?=[A-Z][a-z])/).filter(Boolean);
  return ((parts[0]?.[0] ?? "?") + (parts[1]?.[0] ?? "")).toUpperCase();
}

function Avatar({ c }: { c: CreatorState }) {
  const [broken, setBroken] = useState(false);
  if (!c.avatar_url || broken) return <span className="avatar monogram" aria-hidden="true">{initials(c.display_name || c.login)}</span>;
  return <img className="avatar" src={c.avatar_url} alt="" loading="lazy" onError={() => setBroken(true)} />;
}

/** Twitch's preview template at the size drawn, with a 5-minute bucket so the browser asks again. */
export function previewSrc(template: string, width: number, height: number, now: number): string {
  const url = template.replace("{width}", String(width)).replace("{height}", String(height));
  return `${url}${url.includes("?") ? "&" : "?"}t=${Math.floor(now / PREVIEW_BUCKET_MS)}`;
}

function Preview({ c, now, em }: { c: CreatorState; now: number; em: number }) {
  const [broken, setBroken] = useState<string | null>(null);
  // 16:9 at the drawn size (6.4em of the tile's .8em font), in device pixels, rounded to tens
  const dpr = typeof window === "undefined" ? 1 : Math.min(2, window.devicePixelRatio || 1);
  const w = Math.max(80, Math.round((5.12 * em * dpr) / 10) * 10);
  const h = Math.round((w * 9) / 16);
  const src = c.status === "live" && c.preview_url ? previewSrc(c.preview_url, w, h, now) : null;
  if (!src || broken === src) {
    return <div className="preview placeholder" aria-hidden="true">{c.status === "live" && <span>No preview</span>}</div>;
  }
  return <img className="preview" src={src} alt="" width={w} height={h} onError={() => setBroken(src)} />;
}

function worstOf(incidents: Incident[]): Severity | null {
  const rank = incidents.reduce((n, i) => Math.max(n, severityRank(i.severity)), -1);
  return rank < 0 ? null : (["info", "warning", "critical"] as const)[rank];
}

function newestOf(incidents: Incident[]): Incident | null {
  return incidents.reduce<Incident | null>((a, b) => (!a || Date.parse(b.opened_at) > Date.parse(a.opened_at) ? b : a), null);
}

export interface TileProps {
  c: CreatorState; recent: FeedEvent[]; now: number; health: string[]; incidents: Incident[];
  samples: ViewerSample[]; onOpenIncident: (id: string) => void; density: Density; em: number;
  focusable?: boolean; slot?: string;
}

export function Tile({ c, recent, now, health, incidents, samples, onOpenIncident, density, em, focusable = true, slot }: TileProps) {
  const last = recent[recent.length - 1];
  const highlight = [...recent].reverse().find((e) => highlightOf(e) && now - Date.parse(e.occurred_at) < HIGHLIGHT_MS)
    ?? [...recent].reverse().find((e) => highlightOf(e));
  const seenAt = (highlight as (FeedEvent & { seenAt?: number }) | undefined)?.seenAt;
  const fresh = highlight ? (seenAt ? Math.max(0, 1 - (now - seenAt) / HIGHLIGHT_MS) : 1) : 0;
  const link = linkOf(c.authorization, c.subscriptions);
  const worst = worstOf(incidents);
  const live = c.status === "live";
  const lastWords = last ? `${short(last)} · ${agoWords(last.occurred_at, now)}` : "";
  const label = [
    c.display_name,
    live ? `live for ${since(c.live_since, now) || "a moment"}` : c.status,
    typeof c.viewers === "number" ? `${count.format(c.viewers)} viewers` : "viewers unavailable",
    incidents.length ? `${incidents.length} unresolved incident${incidents.length > 1 ? "s" : ""}, highest ${worst}` : "",
    c.category_name ? `playing ${c.category_name}` : "",
    link ? `${link.headline}${link.detail ? ` (${link.detail})` : ""}` : c.authorization_revoked ? "authorization revoked" : "",
    health.length ? health.join(", ") : "",
    lastWords ? `last event: ${lastWords}` : "",
  ].filter(Boolean).join(", ");
  const dense = density === "dense";
  const statusText = live ? (dense ? "LIVE" : `LIVE ${since(c.live_since, now)}`) : c.status;
  const name = <strong className="tile-name" title={c.display_name}>{c.display_name}</strong>;
  const status = (
    <span className={`badge ${c.status}`} data-testid="status" title={live && c.live_since ? `live since ${new Date(c.live_since).toLocaleTimeString()}` : undefined}>
      <span className="status-mark" aria-hidden="true">{live ? "●" : "○"}</span>{statusText}
    </span>
  );
  return (
    <article className={`tile ${dense ? "dense" : "comfortable"} ${c.status} link-${link?.state ?? "unknown"}${worst ? ` has-${worst}` : ""}`}
      tabIndex={focusable ? 0 : -1} data-testid={`tile-${c.login}`} data-slot={slot} aria-label={label}>
      {dense ? (
        <>
          <div className="tile-head">{name}<IncidentBadge list={incidents} onOpen={onOpenIncident} /></div>
          <div className="tile-pulse">
            {status}
            <Viewers c={c} samples={samples} now={now} spark={false} />
          </div>
        </>
      ) : (
        <>
          <div className="tile-head"><Avatar c={c} />{name}</div>
          <div className="tile-top">
            <Preview c={c} now={now} em={em} />
            <IncidentBadge list={incidents} onOpen={onOpenIncident} />
            <div className="tile-top-side">
              {status}
              <Viewers c={c} samples={samples} now={now} em={em} />
            </div>
          </div>
          <div className="tile-what">
            <span className="tile-title" title={c.title ?? undefined}>{c.title ?? "—"}</span>
            <span className="tile-category" title={c.category_name ?? undefined}>{c.category_name ?? "No category"}</span>
          </div>
          {/* a fresh highlight takes the last event's line (it is usually that event) for 90 s, at
              full contrast (a fading one would drop below AA) */}
          {highlight && fresh > 0 ? (
            <div className="highlight" data-testid="highlight" title={highlightOf(highlight) ?? undefined}>{highlightOf(highlight)}</div>
          ) : (
            <div className="tile-last" title={lastWords || undefined}>{lastWords || "No events yet"}</div>
          )}
          {link ? (
            <div className={`link ${link.state}`} data-testid="link" data-state={link.state} title={link.detail ?? undefined}>
              <span className="dot" aria-hidden="true" />{link.headline}
              {link.brief && <div className="link-detail">{link.brief}</div>}
            </div>
          ) : c.authorization_revoked && <div className="health bad">Authorization revoked</div>}
          {health.slice(0, link?.detail ? 1 : 2).map((h) => <div key={h} className="health bad" data-testid="health">{h}</div>)}
        </>
      )}
    </article>
  );
}

/** Tile size in ems for a density (the wall's font size scales with the screen). */
export function tileBox(density: Density): { w: number; h: number } {
  return density === "dense" ? { w: 9.4, h: 4.2 } : { w: 13, h: 8.5 };
}

/** How much larger than usual the tiles may be drawn so a few creators fill the screen
 * rather than a corner of it (1 when they do not all fit anyway). */
export function fitScale(n: number, width: number, height: number, box: { w: number; h: number }, em: number, most = 1.8): number {
  if (n <= 0) return 1;
  for (let s = most; s > 1; s -= 0.1) {
    const columns = Math.floor(width / (box.w * em * s));
    if (columns >= 1 && Math.ceil(n / columns) * box.h * em * s <= height) return Math.round(s * 10) / 10;
  }
  return 1;
}

export function trouble(list: Incident[] | undefined): number {
  return (list ?? NONE).reduce((n, i) => Math.max(n, (severityRank(i.severity) + 1) * 1000), 0) + (list?.length ?? 0);
}

export function sortCreators(list: CreatorState[], sort: Sort, incidents: Map<string, Incident[]>): CreatorState[] {
  const byName = (a: CreatorState, b: CreatorState) => a.display_name.localeCompare(b.display_name);
  const activity = (c: CreatorState) => Date.parse(c.last_event_at ?? "1970-01-01");
  const viewers = (c: CreatorState) => (typeof c.viewers === "number" ? c.viewers : -1);
  const live = (c: CreatorState) => Number(c.status === "live");
  return [...list].sort((a, b) =>
    sort === "incidents" ? trouble(incidents.get(b.creator_id)) - trouble(incidents.get(a.creator_id)) || byName(a, b)
    : sort === "viewers" ? viewers(b) - viewers(a) || live(b) - live(a) || byName(a, b)
    : sort === "name" ? byName(a, b)
    : sort === "activity" ? activity(b) - activity(a) || byName(a, b)
    : live(b) - live(a) || byName(a, b));
}

/** The whole company at a glance: live of total, viewers, open incidents by severity, events/min. */
export function SummaryStrip({ creators, incidents, eventsPerMinute }: {
  creators: CreatorState[]; incidents: Incident[]; eventsPerMinute: number;
}) {
  const live = creators.filter((c) => c.status === "live");
  const viewers = live.reduce((n, c) => n + (typeof c.viewers === "number" ? c.viewers : 0), 0);
  const open = incidents.filter((i) => i.status !== "resolved");
  const by = (s: Severity) => open.filter((i) => i.severity === s).length;
  return (
    <div className="summary" data-testid="wall-summary" role="group" aria-label="Summary">
      <span className="stat" data-testid="summary-live" data-value={live.length}>
        <span className="stat-mark live" aria-hidden="true">●</span>
        <b>{count.format(live.length)}</b> live <span className="of">of {count.format(creators.length)}</span>
      </span>
      <span className="stat" data-testid="summary-viewers" data-value={viewers}>
        <b>{count.format(viewers)}</b> viewers
      </span>
      <span className="stat incidents" role="group" aria-label={`Open incidents: ${by("critical")} critical, ${by("warning")} warning, ${by("info")} info`}>
        {(["critical", "warning", "info"] as const).map((s) => (
          <span key={s} className={`sev-count ${s}${by(s) ? " some" : ""}`} data-testid={`summary-${s}`} data-value={by(s)}>
            <SeverityIcon severity={s} size={16} /><b>{by(s)}</b> {s}
          </span>
        ))}
      </span>
      <span className="stat" data-testid="summary-epm" data-value={eventsPerMinute}>
        <b>{count.format(eventsPerMinute)}</b> events/min
      </span>
    </div>
  );
}

type Row =
  | { kind: "heading"; key: string; label: string; size: number; top: number; height: number }
  | { kind: "tiles"; key: string; group: string; items: CreatorState[]; start: number; top: number; height: number };

/** Rows of `columns` tiles, under a heading per label when grouped; offsets in pixels. */
function layoutRows(groups: { label: string | null; items: CreatorState[] }[], columns: number, tileH: number, headH: number): Row[] {
  const rows: Row[] = [];
  let top = 0;
  let slot = 0;
  for (const g of groups) {
    if (g.label !== null) {
      rows.push({ kind: "heading", key: `h:${g.label}`, label: g.label, size: g.items.length, top, height: headH });
      top += headH;
    }
    for (let i = 0; i < g.items.length; i += columns) {
      rows.push({ kind: "tiles", key: `${g.label ?? ""}:${i}`, group: g.label ?? "", items: g.items.slice(i, i + columns), start: slot, top, height: tileH });
      top += tileH;
      slot += Math.min(columns, g.items.length - i);
    }
  }
  return rows;
}

export function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return Boolean(el && (el.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)));
}

export function Wall({ creators, recent, health, canManage, incidents, samples, onOpenIncident, eventsPerMinute }: WallProps) {
  const [sort, setSortState] = useState<Sort>(loadSort);
  const [density, setDensityState] = useState<Density>(loadDensity);
  const [group, setGroupState] = useState<"none" | "label">(() => stored(GROUP_KEY, ["none", "label"] as const, "none"));
  const [text, setText] = useState("");
  const [label, setLabel] = useState("");
  const now = useNow();
  const [view, setView] = useState({ top: 0, height: 800, width: 1200, em: 16 });
  const [focusSlot, setFocusSlot] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const filter = useRef<HTMLInputElement>(null);
  const wantFocus = useRef(false);

  const setSort = useCallback((s: Sort) => { setSortState(s); remember(SORT_KEY, s); }, []);
  const setDensity = useCallback((d: Density) => { setDensityState(d); remember(DENSITY_KEY, d); }, []);
  const setGroup = useCallback((g: "none" | "label") => { setGroupState(g); remember(GROUP_KEY, g); }, []);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setView({
      top: el.scrollTop, height: el.clientHeight, width: el.clientWidth,
      em: parseFloat(getComputedStyle(el).fontSize) || 16,
    });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    el.addEventListener("scroll", measure, { passive: true });
    return () => { ro.disconnect(); el.removeEventListener("scroll", measure); };
  }, []);

  // when a highlight-worthy event is first seen, remember when, so it fades from then
  for (const list of recent.values()) for (const e of list) (e as FeedEvent & { seenAt?: number }).seenAt ??= Date.now();

  const labels = useMemo(() => [...new Set(creators.flatMap((c) => c.labels ?? []))].sort(), [creators]);
  const shown = useMemo(() => {
    const needle = text.toLowerCase();
    const list = creators.filter((c) =>
      (!needle || c.display_name.toLowerCase().includes(needle) || c.login.includes(needle) || (c.title ?? "").toLowerCase().includes(needle)) &&
      (!label || (c.labels ?? []).includes(label)));
    return sortCreators(list, sort, incidents);
  }, [creators, text, label, sort, incidents]);

  const groups = useMemo(() => {
    if (group === "none") return [{ label: null, items: shown }];
    const by = new Map<string, CreatorState[]>();
    for (const c of shown) {
      const own = c.labels?.length ? c.labels : [NO_LABEL];
      for (const l of own) by.set(l, [...(by.get(l) ?? []), c]);
    }
    const names = [...by.keys()].filter((l) => l !== NO_LABEL).sort((a, b) => a.localeCompare(b));
    if (by.has(NO_LABEL)) names.push(NO_LABEL);
    return names.map((l) => ({ label: l, items: by.get(l) ?? [] }));
  }, [shown, group]);

  const tile = tileBox(density);
  const scale = group === "none" ? fitScale(shown.length, view.width - view.em, view.height, tile, view.em) : 1;
  const em = view.em * scale;
  const tileW = tile.w * em, tileH = tile.h * em;
  const columns = Math.max(1, Math.floor(view.width / tileW));
  const rows = useMemo(() => layoutRows(groups, columns, tileH, HEADING_EM * em), [groups, columns, tileH, em]);
  const total = rows.length ? rows[rows.length - 1].top + rows[rows.length - 1].height : 0;
  const slots = rows.reduce((n, r) => n + (r.kind === "tiles" ? r.items.length : 0), 0);
  const focusAt = Math.min(focusSlot, Math.max(0, slots - 1));
  // only the rows in view (and one either side) are in the page
  const visible = rows.filter((r) => r.top + r.height >= view.top - tileH && r.top <= view.top + view.height + tileH);
  // one tab stop in the grid (arrow keys do the rest): the focused tile, or the first drawn one
  const drawn = visible.filter((r): r is Extract<Row, { kind: "tiles" }> => r.kind === "tiles");
  const tabStop = drawn.some((r) => focusAt >= r.start && focusAt < r.start + r.items.length) ? focusAt : drawn[0]?.start ?? 0;

  const rowOfSlot = useCallback((slot: number) => rows.findIndex((r) => r.kind === "tiles" && slot >= r.start && slot < r.start + r.items.length), [rows]);
  const moveTo = useCallback((slot: number) => {
    const el = box.current;
    const i = rowOfSlot(slot);
    if (!el || i < 0) return;
    const r = rows[i];
    if (r.top < el.scrollTop) el.scrollTop = r.top - (rows[i - 1]?.kind === "heading" ? rows[i - 1].height : 0);
    else if (r.top + r.height > el.scrollTop + el.clientHeight) el.scrollTop = r.top + r.height - el.clientHeight;
    wantFocus.current = true;
    setFocusSlot(slot);
  }, [rows, rowOfSlot]);
  useLayoutEffect(() => {
    if (!wantFocus.current) return;
    const el = box.current?.querySelector<HTMLElement>(`[data-slot="${focusAt}"]`);
    if (el) { wantFocus.current = false; el.focus({ preventScroll: true }); }
  });

  const onGridKey = (e: ReactKeyboardEvent<HTMLDivElement>) => {
    const target = e.target as HTMLElement;
    if (!target.matches?.("article.tile") || e.altKey || e.ctrlKey || e.metaKey) return;
    const slot = Number(target.dataset.slot ?? focusAt);
    const i = rowOfSlot(slot);
    if (i < 0) return;
    const row = rows[i] as Extract<Row, { kind: "tiles" }>;
    const col = slot - row.start;
    const tilesRow = (from: number, step: number) => {
      for (let j = from + step; j >= 0 && j < rows.length; j += step) if (rows[j].kind === "tiles") return rows[j] as Extract<Row, { kind: "tiles" }>;
      return null;
    };
    let next: number | null = null;
    if (e.key === "ArrowRight") next = Math.min(slots - 1, slot + 1);
    else if (e.key === "ArrowLeft") next = Math.max(0, slot - 1);
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const r = tilesRow(i, e.key === "ArrowDown" ? 1 : -1);
      if (r) next = r.start + Math.min(col, r.items.length - 1);
    } else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = slots - 1;
    else if (e.key === "Enter" && e.target === e.currentTarget.querySelector(`[data-slot="${slot}"]`)) {
      const newest = newestOf(incidents.get(row.items[col]?.creator_id) ?? NONE);
      if (newest) { e.preventDefault(); onOpenIncident(newest.id); }
      return;
    }
    if (next === null) return;
    e.preventDefault();
    moveTo(next);
  };

  // the wall's own keys: `/` filter, `s` next sort, `d` density (never while typing)
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
      if (e.key === "/") { e.preventDefault(); filter.current?.focus(); }
      else if (e.key === "s" && !e.shiftKey) { e.preventDefault(); setSort(SORTS[(SORTS.findIndex((s) => s.id === sort) + 1) % SORTS.length].id); }
      else if (e.key === "d" && !e.shiftKey) { e.preventDefault(); setDensity(density === "dense" ? "comfortable" : "dense"); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [sort, density, setSort, setDensity]);

  const allIncidents = useMemo(() => [...incidents.values()].flat(), [incidents]);

  return (
    <section className={`wall-page density-${density}`} aria-label="Wall">
      <SummaryStrip creators={creators} incidents={allIncidents} eventsPerMinute={eventsPerMinute} />
      <div className="toolbar wall-toolbar">
        <label>Sort <select value={sort} onChange={(e) => setSort(e.target.value as Sort)} data-testid="wall-sort" aria-keyshortcuts="s">
          {SORTS.map((s) => <option key={s.id} value={s.id}>{s.label}</option>)}
        </select></label>
        <label>Filter <input ref={filter} value={text} onChange={(e) => setText(e.target.value)} placeholder="name or title ( / )" data-testid="wall-filter" aria-keyshortcuts="/" /></label>
        <label>Label <select value={label} onChange={(e) => setLabel(e.target.value)} data-testid="wall-label">
          <option value="">all</option>{labels.map((l) => <option key={l}>{l}</option>)}
        </select></label>
        <label>Group <select value={group} onChange={(e) => setGroup(e.target.value as "none" | "label")} data-testid="wall-group">
          <option value="none">none</option><option value="label">by label</option>
        </select></label>
        <div className="segmented" role="group" aria-label="Layout (d)">
          {(["comfortable", "dense"] as const).map((d) => (
            <button key={d} type="button" aria-pressed={density === d} onClick={() => setDensity(d)} data-testid={`wall-density-${d}`}>
              {d === "dense" ? "Dense" : "Comfortable"}
            </button>
          ))}
        </div>
        <span className="shown" data-testid="wall-shown">{shown.length === creators.length ? `${creators.length} creators` : `${shown.length} of ${creators.length} shown`}</span>
      </div>
      {!creators.length && (
        <p className="empty" data-testid="wall-empty">
          No creators on the wall yet.{" "}
          {canManage
            ? "Add them under Settings & admin → Creators, then send each one a connect link so their events can reach you."
            : "An owner or admin of your company adds them."}
        </p>
      )}
      <div className="wall" ref={box} data-testid="wall" data-density={density} onKeyDown={onGridKey}
        onFocus={(e) => { const s = (e.target as HTMLElement).dataset?.slot; if (s !== undefined) setFocusSlot(Number(s)); }}>
        <div className="wall-canvas" style={{ height: total, fontSize: scale === 1 ? undefined : `${scale}em` }}>
          {visible.map((r) => r.kind === "heading" ? (
            <h2 key={r.key} className="wall-group" style={{ top: r.top, height: r.height }} data-testid="wall-group-heading" data-label={r.label}>
              {r.label} <span className="group-size">{r.size} creator{r.size === 1 ? "" : "s"}</span>
            </h2>
          ) : (
            <div key={r.key} className="grid wall-row" role="presentation" data-group={r.group}
              style={{ top: r.top, height: r.height, gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))` }}>
              {r.items.map((c, k) => (
                <Tile key={c.creator_id} c={c} recent={recent.get(c.creator_id) ?? NO_EVENTS} now={now} health={health.get(c.creator_id) ?? []}
                  incidents={incidents.get(c.creator_id) ?? NONE} samples={samples.get(c.creator_id) ?? NO_SAMPLES}
                  onOpenIncident={onOpenIncident} density={density} em={em}
                  focusable={r.start + k === tabStop} slot={String(r.start + k)} />
              ))}
            </div>
          ))}
        </div>
      </div>
    </section>
  );
}
