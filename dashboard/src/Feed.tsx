import { useEffect, useMemo, useRef, useState } from "react";
import type { Credentials } from "./api";
import { api } from "./api";
import type { CreatorState, EventsPage, FeedEvent } from "./types";
import { TOPICS } from "./types";

const ROW_H = 44;

export function describe(e: FeedEvent): string {
  const s = e.summary;
  const parts = [s.actor_login, s.target_login && `→ ${s.target_login}`, s.amount !== undefined && `${s.amount}`,
    s.level !== undefined && `level ${s.level}`, s.title, s.category_name, s.outcome, s.message_text];
  return parts.filter(Boolean).join(" · ");
}

// Acknowledging is done on incidents (the wall's panel), shared by the whole team.
export function Feed({ auth, events, creators }: {
  auth: Credentials; events: FeedEvent[]; creators: Map<string, CreatorState>;
}) {
  const [creator, setCreator] = useState("");
  const [topic, setTopic] = useState("");
  const [paused, setPaused] = useState<number | null>(null); // the last seq shown when paused
  const [older, setOlder] = useState<FeedEvent[]>([]);
  const [done, setDone] = useState(false);
  const [view, setView] = useState({ top: 0, height: 600 });
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight });
    measure();
    el.addEventListener("scroll", measure, { passive: true });
    return () => el.removeEventListener("scroll", measure);
  }, []);

  // history and live meet without a seam: older pages only ever hold seqs below the live list
  const all = useMemo(() => {
    const firstLive = events.length ? events[0].seq : Infinity;
    return [...older.filter((e) => e.seq < firstLive), ...events];
  }, [older, events]);
  const held = paused === null ? 0 : all.filter((e) => e.seq > paused).length;
  const shown = useMemo(() => all
    .filter((e) => paused === null || e.seq <= paused)
    .filter((e) => (!creator || e.creator_id === creator) && (!topic || e.topic === topic))
    .reverse(), [all, paused, creator, topic]);

  async function loadOlder() {
    const oldest = all.length ? all[0].seq : undefined;
    if (oldest === undefined || oldest <= 1) { setDone(true); return; }
    const page = await api<EventsPage>(auth, "GET", `/events?limit=200&before_seq=${oldest}`);
    setOlder((o) => [...page.items.slice().reverse(), ...o]);
    if (page.next_before_seq === null) setDone(true);
  }

  const first = Math.max(0, Math.floor(view.top / ROW_H) - 5);
  const last = Math.min(shown.length, Math.ceil((view.top + view.height) / ROW_H) + 5);
  const names = [...creators.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));

  return (
    <section className="feed-page">
      <div className="toolbar">
        <label>Creator <select value={creator} onChange={(e) => setCreator(e.target.value)} data-testid="feed-creator">
          <option value="">all</option>{names.map((c) => <option key={c.creator_id} value={c.creator_id}>{c.display_name}</option>)}
        </select></label>
        <label>Topic <select value={topic} onChange={(e) => setTopic(e.target.value)} data-testid="feed-topic">
          <option value="">all</option>{TOPICS.map((t) => <option key={t}>{t}</option>)}
        </select></label>
        <button onClick={() => setPaused(paused === null ? (all[all.length - 1]?.seq ?? 0) : null)} data-testid="feed-pause">
          {paused === null ? "Pause" : `Resume (${held} new)`}
        </button>
        <button onClick={() => void loadOlder()} disabled={done}>Load older</button>
      </div>
      <div className="feed" ref={box} data-testid="feed">
        <ol style={{ height: shown.length * ROW_H, position: "relative" }}>
          {shown.slice(first, last).map((e, i) => (
            <li key={e.seq} className={`row topic-${e.topic}`} style={{ top: (first + i) * ROW_H }} data-seq={e.seq} data-testid="feed-row">
              <span className="seq">#{e.seq}</span>
              <span className="when">{new Date(e.occurred_at).toLocaleTimeString()}</span>
              <span className="who">{(e.creator_id && creators.get(e.creator_id)?.display_name) ?? e.broadcaster_user_id}</span>
              <span className="type">{e.type}</span>
              <span className="what">{describe(e)}</span>
            </li>
          ))}
        </ol>
      </div>
    </section>
  );
}
