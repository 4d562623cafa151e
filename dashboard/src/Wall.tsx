import { useEffect, useMemo, useRef, useState } from "react";
import { linkOf } from "./consent";
import type { CreatorState, FeedEvent } from "./types";

const TILE_W = 270;
const TILE_H = 168;
const HIGHLIGHT_MS = 90_000;

type Sort = "live" | "name" | "activity";

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

function Tile({ c, recent, now, health }: { c: CreatorState; recent: FeedEvent[]; now: number; health: string[] }) {
  const last = recent[recent.length - 1];
  const highlight = [...recent].reverse().find((e) => highlightOf(e) && now - Date.parse(e.occurred_at) < HIGHLIGHT_MS)
    ?? [...recent].reverse().find((e) => highlightOf(e));
  const seenAt = (highlight as (FeedEvent & { seenAt?: number }) | undefined)?.seenAt;
  const fresh = highlight ? (seenAt ? Math.max(0, 1 - (now - seenAt) / HIGHLIGHT_MS) : 1) : 0;
  const link = linkOf(c.authorization, c.subscriptions);
  const label = `${c.display_name}, ${c.status}${link ? `, ${link.headline}${link.detail ? ` (${link.detail})` : ""}` : ""}`;
  return (
    <article className={`tile ${c.status} link-${link?.state ?? "unknown"}`} tabIndex={0} data-testid={`tile-${c.login}`} aria-label={label}>
      <div className="tile-head">
        <strong>{c.display_name}</strong>
        <span className={`badge ${c.status}`} data-testid="status">{c.status === "live" ? `LIVE ${since(c.live_since, now)}` : c.status}</span>
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

export function Wall({ creators, recent, health, canManage }: {
  creators: CreatorState[]; recent: Map<string, FeedEvent[]>; health: Map<string, string[]>; canManage: boolean;
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
    return list.sort((a, b) =>
      sort === "name" ? a.display_name.localeCompare(b.display_name)
      : sort === "activity" ? activity(b) - activity(a)
      : Number(b.status === "live") - Number(a.status === "live") || a.display_name.localeCompare(b.display_name));
  }, [creators, text, label, sort]);

  const columns = Math.max(1, Math.floor(view.width / TILE_W));
  const rows = Math.ceil(shown.length / columns);
  const first = Math.max(0, Math.floor(view.top / TILE_H) - 1);
  const last = Math.min(rows, Math.ceil((view.top + view.height) / TILE_H) + 1);
  const visible = shown.slice(first * columns, last * columns);

  return (
    <section className="wall-page">
      <div className="toolbar">
        <label>Sort <select value={sort} onChange={(e) => setSort(e.target.value as Sort)} data-testid="wall-sort">
          <option value="live">Live first</option><option value="name">Name</option><option value="activity">Recent activity</option>
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
            {visible.map((c) => <Tile key={c.creator_id} c={c} recent={recent.get(c.creator_id) ?? []} now={now} health={health.get(c.creator_id) ?? []} />)}
          </div>
        </div>
      </div>
    </section>
  );
}
