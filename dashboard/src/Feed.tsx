import { memo, type RefObject, useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Credentials } from "./api";
import { api } from "./api";
import { TopicIcon } from "./icons";
import { LiveFeed } from "./livefeed";
import type { Connection, CreatorState, EventsPage, FeedEvent } from "./types";
import { TOPICS } from "./types";
import { sentence, topicLabel, typeLabel } from "./words";
import "./feed.css";

const MAX_NARROWED = 5000; // the same bound as the wall's live list
const PAGE = 200;
const REDRAW_MS = 500;

// Rows have a fixed height so the list can be virtualized (5,000 live events); a TV-sized
// screen gets taller rows and larger type (feed.css switches at the same width).
const LARGE = "(min-width: 2400px)";

function useMedia(query: string): boolean {
  const [match, setMatch] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = () => setMatch(m.matches);
    m.addEventListener("change", on);
    return () => m.removeEventListener("change", on);
  }, [query]);
  return match;
}

/** `value`, passed on at most once per `ms`: the newest one, never one skipped at the end. */
function useThrottled<T>(value: T, ms: number): T {
  const [shown, setShown] = useState(value);
  const latest = useRef(value);
  latest.current = value;
  const timer = useRef(0);
  useEffect(() => {
    if (Object.is(value, shown) || timer.current) return;
    timer.current = window.setTimeout(() => { timer.current = 0; setShown(latest.current); }, ms);
  }, [value, shown, ms]);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return shown;
}

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName));
}

// how many events have seq <= `seq` (events in seq order)
function upperBound(events: FeedEvent[], seq: number): number {
  let lo = 0, hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].seq <= seq) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// one formatter for every row (building one per call cost more than the rest of a row)
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const clock = (iso: string) => CLOCK.format(new Date(iso));

// Acknowledging is done on incidents (the wall's panel), shared by the whole team, never per event.
export function Feed({ auth, events: arriving, creators }: {
  auth: Credentials; events: FeedEvent[]; creators: Map<string, CreatorState>;
}) {
  // Each new event moves every row on screen down one, so the whole list is painted again: at
  // 100 events/s that was a frame in three over budget (the browser benchmark). The list takes
  // new events at most every 500 ms instead (nobody reads 100 rows a second; nothing is lost,
  // they arrive together); the wall's socket and its cursor are unaffected.
  const events = useThrottled(arriving, REDRAW_MS);
  const [creator, setCreator] = useState("");
  const [topic, setTopic] = useState("");
  const [paused, setPaused] = useState<number | null>(null); // the last seq shown when paused
  const [older, setOlder] = useState<FeedEvent[]>([]);
  const [olderDone, setOlderDone] = useState(false);
  const [loading, setLoading] = useState(false);
  const [narrowed, setNarrowed] = useState<FeedEvent[]>([]);
  const [narrowState, setNarrowState] = useState<Connection | null>(null);
  const [open, setOpen] = useState<FeedEvent | null>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const box = useRef<HTMLDivElement>(null);
  const creatorSelect = useRef<HTMLSelectElement>(null);
  const closeButton = useRef<HTMLButtonElement>(null);
  const openedFrom = useRef<number | null>(null);
  const filterRun = useRef(0); // an older page answered after the filters changed is dropped
  const liveHead = useRef<number | null>(null);
  liveHead.current = events.length ? events[events.length - 1].seq : null;
  const rowH = useMedia(LARGE) ? 60 : 44;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight });
    measure();
    el.addEventListener("scroll", measure, { passive: true });
    window.addEventListener("resize", measure);
    return () => { el.removeEventListener("scroll", measure); window.removeEventListener("resize", measure); };
  }, []);

  // A creator chosen: a second socket the relay narrows to that creator (its room subscription),
  // starting right after the newest event the wall's socket has shown, so nothing falls between.
  // The wall's own socket stays un-narrowed. Closed when the filter changes or the page is left.
  useEffect(() => {
    setNarrowed([]);
    if (!creator) { setNarrowState(null); return; }
    const token = typeof auth === "string" ? auth : () => auth.token();
    const feed = new LiveFeed(token, {
      events: (batch) => setNarrowed((old) => {
        const merged = old.concat(batch);
        return merged.length > MAX_NARROWED ? merged.slice(merged.length - MAX_NARROWED) : merged;
      }),
      state: () => {}, // creator states come through the wall's socket
      connection: (status) => setNarrowState(status),
      // its position is lost: what it held may have a hole, so start the history over
      resync: () => { setNarrowed([]); filterRun.current += 1; setOlder([]); setOlderDone(false); },
    }, { creators: [creator], fromSeq: liveHead.current });
    // an open socket must be given each renewed token before the old one runs out; one the
    // relay closed meanwhile (its token ran out while the machine slept) connects again with it.
    // The wall's socket deals with the session itself (renewal, or signing out on a refusal).
    const off = typeof auth === "string" ? () => {}
      : auth.onRenew((t) => void feed.refreshToken(t).then(() => feed.reconnect()));
    return () => { off(); feed.close(); };
  }, [auth, creator]);

  // history restarts whenever a filter changes: older pages are fetched with those filters
  useEffect(() => {
    filterRun.current += 1;
    setOlder([]);
    setOlderDone(false);
    setLoading(false);
  }, [creator, topic]);

  const all = useMemo(() => {
    if (!creator && !older.length) return events; // the wall's list as it is: already in order
    const bySeq = new Map<number, FeedEvent>();
    for (const e of older) bySeq.set(e.seq, e);
    for (const e of events) if (!creator || e.creator_id === creator) bySeq.set(e.seq, e);
    for (const e of narrowed) bySeq.set(e.seq, e);
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }, [older, events, narrowed, creator]);
  const matching = useMemo(
    () => (!creator && !topic ? all
      : all.filter((e) => (!creator || e.creator_id === creator) && (!topic || e.topic === topic))),
    [all, creator, topic],
  );
  // newest first without copying 5,000 events a frame: row i is matching[count - 1 - i];
  // paused, the list ends at the last seq shown (matching is in seq order)
  const count = paused === null ? matching.length : upperBound(matching, paused);
  const held = matching.length - count;

  async function loadOlder() {
    const run = filterRun.current;
    const oldest = matching.length ? matching[0].seq : null;
    if (oldest !== null && oldest <= 1) { setOlderDone(true); return; }
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (oldest !== null) query.set("before_seq", String(oldest));
    if (creator) query.set("creator_id", creator);
    if (topic) query.set("topic", topic);
    setLoading(true);
    try {
      const page = await api<EventsPage>(auth, "GET", `/events?${query}`);
      if (run !== filterRun.current) return;
      setOlder((o) => [...page.items, ...o]);
      if (page.next_before_seq == null) setOlderDone(true);
    } finally {
      if (run === filterRun.current) setLoading(false);
    }
  }

  const togglePause = useCallback(
    () => setPaused((p) => (p === null ? (all.length ? all[all.length - 1].seq : 0) : null)),
    [all],
  );

  const closeDetails = useCallback(() => {
    setOpen(null);
    const seq = openedFrom.current;
    // back to the row it was opened from, if that row is still drawn and the person has not
    // moved the focus meanwhile (a `/` pressed right after Esc keeps the creator filter)
    requestAnimationFrame(() => {
      const now = document.activeElement;
      if (now && now !== document.body) return;
      box.current?.querySelector<HTMLElement>(`[data-seq="${seq}"] button`)?.focus();
    });
  }, []);

  // page shortcuts: `/` the creator filter, `p` pause; Esc closes the details
  useEffect(() => {
    const onKey = (ev: KeyboardEvent) => {
      if (ev.key === "Escape" && open) { ev.preventDefault(); closeDetails(); return; }
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      if (ev.key === "/") { ev.preventDefault(); creatorSelect.current?.focus(); }
      else if (ev.key === "p") { ev.preventDefault(); togglePause(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open, closeDetails, togglePause]);

  useEffect(() => { if (open) closeButton.current?.focus(); }, [open]);

  const nameOf = (e: FeedEvent) => (e.creator_id ? creators.get(e.creator_id)?.display_name : undefined) ?? null;
  const first = Math.max(0, Math.floor(view.top / rowH) - 5);
  const last = Math.min(count, Math.ceil((view.top + view.height) / rowH) + 5);
  const drawn: FeedEvent[] = [];
  for (let i = first; i < last; i += 1) drawn.push(matching[count - 1 - i]);
  // 500 creators sorted and 500 options diffed on every event batch cost frames (the benchmark
  // saw p95 50 ms at 100 events/s): only a changed roster makes them again
  const creatorOptions = useMemo(() => [...creators.values()]
    .sort((a, b) => a.display_name.localeCompare(b.display_name))
    .map((c) => <option key={c.creator_id} value={c.creator_id}>{c.display_name}</option>), [creators]);
  const select = useCallback((e: FeedEvent) => { openedFrom.current = e.seq; setOpen(e); }, []);

  return (
    <section className="feed-page" aria-label="Event feed">
      <div className="toolbar feed-toolbar">
        <label>Creator <select ref={creatorSelect} value={creator} onChange={(e) => setCreator(e.target.value)} data-testid="feed-creator">
          <option value="">All creators</option>
          {creatorOptions}
        </select></label>
        <label>Topic <select value={topic} onChange={(e) => setTopic(e.target.value)} data-testid="feed-topic">
          <option value="">All topics</option>
          {TOPICS.map((t) => <option key={t} value={t}>{topicLabel(t)}</option>)}
        </select></label>
        <button onClick={togglePause} data-testid="feed-pause" aria-pressed={paused !== null}>
          {paused === null ? "Pause" : `Resume (${held} new)`}
        </button>
        <button onClick={() => void loadOlder()} disabled={olderDone || loading} data-testid="feed-older">
          {olderDone ? "No older events" : loading ? "Loading…" : "Load older"}
        </button>
        {creator && (
          <span className="feed-narrowed" data-testid="feed-narrowed" data-state={narrowState ?? ""}>
            {narrowState === "live" ? "Following this creator live" : "Connecting to this creator…"}
          </span>
        )}
        <span className="feed-count" data-testid="feed-count">{count.toLocaleString()} shown</span>
      </div>
      <div className="feed-body">
        <div className="feed" ref={box} data-testid="feed">
          <ol style={{ height: count * rowH, position: "relative" }} aria-label="Events, newest first">
            {drawn.map((e, i) => (
              // placed from the list's oldest end, so a row keeps its offset as newer events
              // arrive above it and is not drawn again (FeedRow is memoized)
              <FeedRow key={e.seq} e={e} name={nameOf(e)} bottom={(count - 1 - (first + i)) * rowH + 4} rowH={rowH}
                selected={open?.seq === e.seq} onSelect={select} />
            ))}
          </ol>
          {count === 0 && <p className="feed-empty">No events {creator || topic ? "match these filters yet" : "yet"}.</p>}
        </div>
        {open && <Details e={open} name={nameOf(open)} onClose={closeDetails} closeRef={closeButton} />}
      </div>
    </section>
  );
}

const FeedRow = memo(function FeedRow({ e, name, bottom, rowH, selected, onSelect }: {
  e: FeedEvent; name: string | null; bottom: number; rowH: number; selected: boolean; onSelect: (e: FeedEvent) => void;
}) {
  const words = sentence(e, name);
  return (
    <li className={`feed-row topic-${e.topic}`} style={{ bottom, height: rowH - 4 }} data-seq={e.seq} data-testid="feed-row">
      <button type="button" className={selected ? "feed-item selected" : "feed-item"} onClick={() => onSelect(e)} aria-haspopup="dialog">
        <time className="feed-when" dateTime={e.occurred_at}>{clock(e.occurred_at)}</time>
        <span className="feed-icon" title={topicLabel(e.topic)}><TopicIcon topic={e.topic} size={rowH > 44 ? 22 : 16} /></span>
        <span className="feed-who">{name ?? e.broadcaster_user_id}</span>
        <span className="feed-sentence" data-testid="feed-sentence" title={words}>{words}</span>
      </button>
    </li>
  );
});

function Details({ e, name, onClose, closeRef }: {
  e: FeedEvent; name: string | null; onClose: () => void; closeRef: RefObject<HTMLButtonElement | null>;
}) {
  // fields the relay or the API may add (a delivery's message id, when it was received)
  const extra = e as FeedEvent & { message_id?: string; received_at?: string };
  const when = (iso: string) => new Date(iso).toLocaleString();
  return (
    <aside className="feed-details" role="dialog" aria-modal="false" aria-labelledby="feed-details-title" data-testid="event-details">
      <header>
        <h2 id="feed-details-title"><TopicIcon topic={e.topic} size={18} /> {sentence(e, name)}</h2>
        <button ref={closeRef} type="button" onClick={onClose} aria-label="Close details" data-testid="event-details-close">×</button>
      </header>
      <dl>
        <dt>Type</dt><dd><code data-testid="event-type">{e.type}</code> <span className="muted">({typeLabel(e.type)}, version {e.version})</span></dd>
        <dt>Topic</dt><dd>{topicLabel(e.topic)} <code>{e.topic}</code></dd>
        <dt>Creator</dt><dd>{name ?? "unknown"} <span className="muted">(Twitch user {e.broadcaster_user_id})</span></dd>
        <dt>Seq</dt><dd>{e.seq}</dd>
        {extra.message_id && <><dt>Message id</dt><dd><code>{extra.message_id}</code></dd></>}
        <dt>Occurred</dt><dd><time dateTime={e.occurred_at}>{when(e.occurred_at)}</time></dd>
        {extra.received_at && <><dt>Received</dt><dd><time dateTime={extra.received_at}>{when(extra.received_at)}</time></dd></>}
      </dl>
      <h3>Summary</h3>
      <dl data-testid="event-summary">
        {Object.entries(e.summary).map(([k, v]) => (
          <div key={k} className="feed-field"><dt>{k}</dt><dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd></div>
        ))}
      </dl>
      {Object.keys(e.summary).length === 0 && <p className="muted">No fields</p>}
    </aside>
  );
}
