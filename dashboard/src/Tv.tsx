// TV / kiosk mode (`#/tv`): the whole screen, no controls, large type; pages cycle when the
// creators do not fit; the screen kept awake; open critical incidents as a full-width band.
import { useEffect, useMemo, useRef, useState } from "react";
import { ago, SeverityIcon } from "./Incidents";
import type { Connection, CreatorState, FeedEvent, Incident, ViewerSample } from "./types";
import type { Density, WallProps } from "./Wall";
import { fitScale, loadDensity, loadSort, sortCreators, SummaryStrip, Tile, tileBox, useNow } from "./Wall";

const CYCLE_SECONDS = 15;
const MIN_CYCLE_SECONDS = 2;
const POINTER_MS = 3000;
const NONE: Incident[] = [];
const NO_SAMPLES: ViewerSample[] = [];
const NO_EVENTS: FeedEvent[] = [];

export interface TvProps extends WallProps {
  connection: Connection;
  incidentsList: Incident[];
  onExit: () => void;
  companyName?: string;
  logoUrl?: string | null;
}

/** `#/tv?cycle=<seconds>`: how long a page stays (at least 2 s; 15 s unless given). */
export function cycleSeconds(hash: string): number {
  const q = hash.includes("?") ? new URLSearchParams(hash.slice(hash.indexOf("?") + 1)) : null;
  const n = Number(q?.get("cycle"));
  return Number.isFinite(n) && n > 0 ? Math.max(MIN_CYCLE_SECONDS, n) : CYCLE_SECONDS;
}

// what the screen says about the link to the relay: never a dead end, it keeps trying
function connectionText(c: Connection): { text: string; tone: "live" | "waiting" | "lost" } {
  switch (c) {
    case "live":
    case "resynced":
      return { text: "Live", tone: "live" };
    case "catching up":
      return { text: "Catching up…", tone: "waiting" };
    case "connecting":
      return { text: "Connecting…", tone: "waiting" };
    default:
      return { text: "Reconnecting…", tone: "lost" };
  }
}

/** Keep the screen on while the TV mode shows; asked again when the tab is shown again
 * (the browser releases the lock whenever the page is hidden). */
function useWakeLock(): void {
  useEffect(() => {
    type Sentinel = { release: () => Promise<void>; released?: boolean };
    const nav = navigator as Navigator & { wakeLock?: { request: (type: "screen") => Promise<Sentinel> } };
    if (!nav.wakeLock) return;
    let lock: Sentinel | null = null;
    let gone = false;
    const acquire = async () => {
      if (document.visibilityState !== "visible" || (lock && !lock.released)) return;
      try {
        const got = await nav.wakeLock!.request("screen");
        if (gone) void got.release(); else lock = got;
      } catch { /* refused (battery saver, no permission): the screen may sleep */ }
    };
    void acquire();
    const onVisible = () => void acquire();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      gone = true;
      document.removeEventListener("visibilitychange", onVisible);
      void lock?.release().catch(() => undefined);
    };
  }, []);
}

function useFullscreen(): void {
  useEffect(() => {
    const root = document.documentElement;
    // allowed only after a gesture (the `t` key or a click): otherwise the browser says no, and that is fine
    if (!document.fullscreenElement && root.requestFullscreen) root.requestFullscreen().catch(() => undefined);
    return () => { if (document.fullscreenElement) void document.exitFullscreen().catch(() => undefined); };
  }, []);
}

function CriticalBand({ list, creators, now }: { list: Incident[]; creators: Map<string, CreatorState>; now: number }) {
  if (!list.length) return null;
  const shown = list.slice(0, 3);
  return (
    <div className="tv-critical" role="alert" data-testid="tv-critical">
      {shown.map((i) => (
        <div key={i.id} className="band" data-testid="critical-banner" data-incident={i.id}>
          <span className="word"><SeverityIcon severity="critical" size={28} />CRITICAL</span>
          <span className="who">{i.creator_id ? creators.get(i.creator_id)?.display_name ?? "Unknown creator" : "Company-wide"}</span>
          <span className="what" title={i.title}>{i.title}</span>
          <time dateTime={i.opened_at}>open {ago(i.opened_at, now)}</time>
        </div>
      ))}
      {list.length > shown.length && <div className="more">+{list.length - shown.length} more critical</div>}
    </div>
  );
}

export function TvWall({ creators, recent, health, incidents, samples, onOpenIncident, eventsPerMinute, connection, incidentsList, onExit, companyName, logoUrl }: TvProps) {
  const now = useNow();
  const [cycle] = useState(() => cycleSeconds(window.location.hash));
  const [chosen] = useState(loadDensity);
  const [sort] = useState(loadSort);
  const [page, setPage] = useState(0);
  const [pointer, setPointer] = useState(false);
  const [box, setBox] = useState({ width: 1600, height: 800, em: 16 });
  const grid = useRef<HTMLDivElement>(null);
  const exit = useRef(onExit);
  exit.current = onExit;
  useWakeLock();
  useFullscreen();

  useEffect(() => {
    const el = grid.current;
    if (!el) return;
    // the em of the screen, not of the grid (whose font grows when few creators fill it)
    const measure = () => setBox({ width: el.clientWidth, height: el.clientHeight, em: parseFloat(getComputedStyle(el.parentElement ?? el).fontSize) || 16 });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // the exit button shows while the pointer moves; Esc leaves too
  useEffect(() => {
    let hide = 0;
    const moved = () => { setPointer(true); window.clearTimeout(hide); hide = window.setTimeout(() => setPointer(false), POINTER_MS); };
    const key = (e: KeyboardEvent) => { if (e.key === "Escape") { e.preventDefault(); exit.current(); } };
    window.addEventListener("mousemove", moved);
    window.addEventListener("keydown", key);
    return () => { window.clearTimeout(hide); window.removeEventListener("mousemove", moved); window.removeEventListener("keydown", key); };
  }, []);

  const sorted = useMemo(() => sortCreators(creators, sort, incidents), [creators, sort, incidents]);
  // the wall's layout, unless the comfortable one would take more than three pages
  const fit = (d: Density) => Math.max(1, Math.floor(box.width / (tileBox(d).w * box.em))) * Math.max(1, Math.floor(box.height / (tileBox(d).h * box.em)));
  const density: Density = chosen === "dense" || sorted.length > 3 * fit("comfortable") ? "dense" : "comfortable";
  const tile = tileBox(density);
  const pad = box.em; // the grid's padding
  const scale = fitScale(sorted.length, box.width - pad, box.height - pad, tile, box.em, 2.5);
  const em = box.em * scale;
  const columns = Math.max(1, Math.floor((box.width - pad) / (tile.w * em)));
  const rows = Math.max(1, Math.floor((box.height - pad) / (tile.h * em)));
  const perPage = columns * rows;
  const pages = Math.max(1, Math.ceil(sorted.length / perPage));
  const current = page % pages;

  useEffect(() => {
    if (pages < 2) return;
    const t = window.setInterval(() => setPage((p) => (p + 1) % pages), cycle * 1000);
    return () => window.clearInterval(t);
  }, [pages, cycle]);

  const byId = useMemo(() => new Map(creators.map((c) => [c.creator_id, c])), [creators]);
  const critical = useMemo(() => incidentsList
    .filter((i) => i.severity === "critical" && i.status !== "resolved")
    .sort((a, b) => Date.parse(b.opened_at) - Date.parse(a.opened_at)), [incidentsList]);
  const link = connectionText(connection);
  const visible = sorted.slice(current * perPage, (current + 1) * perPage);

  return (
    <main className={`tv${pointer ? " pointer" : ""}`} data-testid="tv-wall" aria-label="Wall, TV mode">
      <header className="tv-top">
        {(companyName || logoUrl) && (
          <span className="tv-brand">{logoUrl && <img className="logo" src={logoUrl} alt="" />}{companyName}</span>
        )}
        <SummaryStrip creators={creators} incidents={incidentsList} eventsPerMinute={eventsPerMinute} />
        {pages > 1 && <span className="tv-page" data-testid="tv-page" title={`page ${current + 1} of ${pages}`}>{current + 1} / {pages}</span>}
        <span className={`tv-conn ${link.tone}`} data-testid="tv-connection" role="status">
          <span aria-hidden="true">{link.tone === "live" ? "●" : "↻"}</span>{link.text}
        </span>
        <time className="tv-clock" dateTime={new Date(now).toISOString()}>{new Date(now).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}</time>
      </header>
      <CriticalBand list={critical} creators={byId} now={now} />
      <div className="tv-grid" ref={grid} data-testid="tv-grid" data-density={density}
        style={{ gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))`, gridAutoRows: `${tile.h}em`, fontSize: scale === 1 ? undefined : `${scale}em` }}>
        {visible.map((c) => (
          <Tile key={c.creator_id} c={c} recent={recent.get(c.creator_id) ?? NO_EVENTS} now={now} health={health.get(c.creator_id) ?? []}
            incidents={incidents.get(c.creator_id) ?? NONE} samples={samples.get(c.creator_id) ?? NO_SAMPLES}
            onOpenIncident={onOpenIncident} density={density} em={em} focusable={false} />
        ))}
        {!creators.length && <p className="tv-empty">No creators on the wall yet.</p>}
      </div>
      <button type="button" className="tv-exit" onClick={onExit} data-testid="tv-exit">Exit TV mode (Esc)</button>
    </main>
  );
}
