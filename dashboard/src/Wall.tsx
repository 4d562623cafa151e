import { useEffect, useMemo, useRef, useState } from "react";
import { linkOf } from "./consent";
import { IncidentBadge } from "./Incidents";
import type { CreatorState, FeedEvent, Incident, ViewerSample } from "./types";
import { severityRank } from "./types";

const TILE_W = 270;
const TILE_H = 192;
const SPARK_SECONDS = 3600;
const HIGHLIGHT_MS = 90_000;

type Sort = "live" | "name" | "activity" | "incidents";
const NONE: Incident[] = [];
const NO_SAMPLES: ViewerSample[] = [];

function since(iso: string | null, now: number): string {
  if (!iso) return "";
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
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

function Viewers({ c, samples, now }: { c: CreatorState; samples: ViewerSample[]; now: number }) {
  const known = typeof c.viewers === "number";
  const trend = samples.filter(([, v]) => v !== null);
  const title = known
    ? `${count.format(c.viewers as number)} viewers${c.viewers_at ? ` at ${new Date(c.viewers_at).toLocaleTimeString()}` : ""}; the line shows the last 60 minutes`
    : c.viewers_at ? "offline at the last sample" : "no sample yet";
  return (
    <div className="viewers" title={title} data-testid="viewers">
      {trend.length > 0 && <Sparkline samples={samples} now={now} />}
      <span className="viewer-count" data-testid="viewer-count">
        {known ? <>{count.format(c.viewers as number)}<span className="unit"> viewers</span></> : "—"}
      </span>
      {!known && <span className="unit" aria-hidden="true">viewers</span>}
    </div>
  );
}

function Tile({ c, recent, now, health, incidents, samples, onOpenIncident }: {
  c: CreatorState; recent: FeedEvent[]; now: number; health: string[];
  incidents: Incident[]; samples: ViewerSample[]; onOpenIncident: (id: string) => void;
}) {
  const last = recent[recent.length - 1];
  const highlight = [...recent].reverse().find((e) => highlightOf(e) && now - Date.parse(e.occurred_at) < HIGHLIGHT_MS)
    ?? [...recent].reverse().find((e) => highlightOf(e));
  const seenAt = (highlight as (FeedEvent & { seenAt?: number }) | undefined)?.seenAt;
  const fresh = highlight ? (seenAt ? Math.max(0, 1 - (now - seenAt) / HIGHLIGHT_MS) : 1) : 0;
  const link = linkOf(c.authorization, c.subscriptions);
  const worstOf = incidents.reduce((n, i) => Math.max(n, severityRank(i.severity)), -1);
  const open = incidents.length
    ? `, ${incidents.length} unresolved incident${incidents.length > 1 ? "s" : ""} (highest ${["info", "warning", "critical"][worstOf]})` : "";
  const audience = typeof c.viewers === "number" ? `, ${c.viewers} viewers` : "";
  const label = `${c.display_name}, ${c.status}${audience}${open}${link ? `, ${link.headline}${link.detail ? ` (${link.detail})` : ""}` : ""}`;
  const worst = worstOf === 2 ? "critical" : worstOf === 1 ? "warning" : "";
  return (
    <article className={`tile ${c.status} link-${link?.state ?? "unknown"} ${worst ? `has-${worst}` : ""}`} tabIndex={0} data-testid={`tile-${c.login}`} aria-label={label}>
      <div className="tile-head">
        <strong>{c.display_name}</strong>
        <span className={`badge ${c.status}`} data-testid="status">{c.status === "live" ? `LIVE ${since(c.live_since, now)}` : c.status}</span>
      </div>
      <div className="tile-pulse">
        <IncidentBadge list={incidents} onOpen={onOpenIncident} />
        <Viewers c={c} samples={samples} now={now} />
      </div>
      <div className="tile-title">{c.title ?? "—"}</div>
      <div className="tile-category">{c.category_name ?? ""}</div>
      {last && <div className="tile-last">Last: {last.type.replace("channel.", "")} · {since(last.occurred_at, now)} ago</div>}
      {link ? (
        <div className={`link ${link.state}`} data-testid="link" data-state={link.state} title={link.detail ?? undefined}>
          <span className="dot" aria-hidden="true" />{link.headline}
          {link.brief && <div className="link-detail">{link.brief}</div>}
        </div>
      ) : c.authorization_revoked && <div className="health bad">Authorization revoked</div>}
      {health.slice(0, link?.detail ? 1 : 2).map((h) => <div key={h} className="health bad" data-testid="health">{h}</div>)}
      {highlight && fresh > 0 && (
        <div className="highlight" data-testid="highlight" style={{ opacity: 0.35 + 0.65 * fresh }}>{highlightOf(highlight)}</div>
      )}
    </article>
  );
}

export function Wall({ creators, recent, health, canManage, incidents, samples, onOpenIncident }: {
  creators: CreatorState[]; recent: Map<string, FeedEvent[]>; health: Map<string, string[]>; canManage: boolean;
  incidents: Map<string, Incident[]>; samples: Map<string, ViewerSample[]>; onOpenIncident: (id: string) => void;
}) {
  const [sort, setSort] = useState<Sort>("live");
  const [text, setText] = useState("");
  const [label, setLabel] = useState("");
  const [now, setNow] = useState(Date.now());
  const [view, setView] = useState({ top: 0, height: 800, width: 1200 });
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight, width: el.clientWidth });
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
    const activity = (c: CreatorState) => Date.parse(c.last_event_at ?? "1970-01-01");
    // the worst severity first, then how many
    const trouble = (c: CreatorState) => (incidents.get(c.creator_id) ?? NONE)
      .reduce((n, i) => Math.max(n, (severityRank(i.severity) + 1) * 1000), 0) + (incidents.get(c.creator_id)?.length ?? 0);
    return list.sort((a, b) =>
      sort === "incidents" ? trouble(b) - trouble(a) || a.display_name.localeCompare(b.display_name)
      : sort === "name" ? a.display_name.localeCompare(b.display_name)
      : sort === "activity" ? activity(b) - activity(a)
      : Number(b.status === "live") - Number(a.status === "live") || a.display_name.localeCompare(b.display_name));
  }, [creators, text, label, sort, incidents]);

  const columns = Math.max(1, Math.floor(view.width / TILE_W));
  const rows = Math.ceil(shown.length / columns);
  const first = Math.max(0, Math.floor(view.top / TILE_H) - 1);
  const last = Math.min(rows, Math.ceil((view.top + view.height) / TILE_H) + 1);
  const visible = shown.slice(first * columns, last * columns);

  return (
    <section className="wall-page">
      <div className="toolbar">
        <label>Sort <select value={sort} onChange={(e) => setSort(e.target.value as Sort)} data-testid="wall-sort">
          <option value="live">Live first</option><option value="name">Name</option><option value="activity">Recent activity</option><option value="incidents">Incidents first</option>
        </select></label>
        <label>Filter <input value={text} onChange={(e) => setText(e.target.value)} placeholder="name or title" data-testid="wall-filter" /></label>
        <label>Label <select value={label} onChange={(e) => setLabel(e.target.value)}>
          <option value="">all</option>{labels.map((l) => <option key={l}>{l}</option>)}
        </select></label>
        <span>{shown.filter((c) => c.status === "live").length} live of {shown.length}</span>
      </div>
      {!creators.length && (
        <p className="empty" data-testid="wall-empty">
          No creators on the wall yet.{" "}
          {canManage
            ? "Add them under Settings & admin → Creators, then send each one a connect link so their events can reach you."
            : "An owner or admin of your company adds them."}
        </p>
      )}
      <div className="wall" ref={box} data-testid="wall">
        <div style={{ height: rows * TILE_H, position: "relative" }}>
          <div className="grid" style={{ transform: `translateY(${first * TILE_H}px)`, gridTemplateColumns: `repeat(${columns}, 1fr)` }}>
            {visible.map((c) => <Tile key={c.creator_id} c={c} recent={recent.get(c.creator_id) ?? []} now={now} health={health.get(c.creator_id) ?? []}
              incidents={incidents.get(c.creator_id) ?? NONE} samples={samples.get(c.creator_id) ?? NO_SAMPLES} onOpenIncident={onOpenIncident} />)}
          </div>
        </div>
      </div>
    </section>
  );
}
