import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError } from "./api";
import { readableOn } from "./contrast";
import { LiveFeed } from "./livefeed";
import { Wall } from "./Wall";
import { Feed } from "./Feed";
import { Admin } from "./Admin";
import type { Connection, Creator, CreatorState, EventsPage, FeedEvent, Me, SubscriptionHealth } from "./types";
import { atLeast } from "./types";

const TOKEN_KEY = "controlroom.token";

const MAX_FEED = 5000;

function initialToken(): string | null {
  const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, "", window.location.pathname); // keep it out of the address bar
    return fromLink;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function SignIn({ onToken, reason }: { onToken: (t: string) => void; reason?: string }) {
  const [value, setValue] = useState("");
  return (
    <main className="signin">
      <h1>Creator Control Room</h1>
      {reason && <p role="alert" className="refused">Signed out: {reason}</p>}
      <form onSubmit={(e) => { e.preventDefault(); if (value.trim()) onToken(value.trim()); }}>
        <label htmlFor="token">Access token</label>
        <textarea id="token" value={value} onChange={(e) => setValue(e.target.value)} rows={4} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

export function App() {
  const [token, setToken] = useState<string | null>(initialToken);
  const [refused, setRefused] = useState<string | undefined>();
  const signOut = useCallback((reason?: string) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setRefused(reason);
    setToken(null);
  }, []);
  if (!token) return <SignIn reason={refused} onToken={(t) => { sessionStorage.setItem(TOKEN_KEY, t); setToken(t); }} />;
  return <ControlRoom key={token} token={token} signOut={signOut} />;
}

type Page = "wall" | "feed" | "admin";

function ControlRoom({ token, signOut }: { token: string; signOut: (reason?: string) => void }) {
  const [me, setMe] = useState<Me | null>(null);
  const [creators, setCreators] = useState<Map<string, CreatorState>>(new Map());
  const [events, setEvents] = useState<FeedEvent[]>([]);
  const [connection, setConnection] = useState<Connection>("connecting");
  const [page, setPage] = useState<Page>("wall");
  const [announcement, setAnnouncement] = useState("");
  const feed = useRef<LiveFeed | null>(null);

  const loadMe = useCallback(async () => {
    try {
      setMe(await api<Me>(token, "GET", "/me"));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) signOut(e.message);
    }
  }, [token, signOut]);

  const [health, setHealth] = useState<Map<string, string[]>>(new Map());
  const loadRoster = useCallback(async () => {
    // labels come from the REST API; live state from the socket's snapshot
    const rows = await api<Creator[]>(token, "GET", "/creators");
    setCreators((old) => {
      const next = new Map<string, CreatorState>();
      for (const r of rows) {
        next.set(r.id, {
          creator_id: r.id, twitch_user_id: r.twitch_user_id, login: r.twitch_login,
          display_name: r.display_name, status: r.status, title: r.title, category_name: r.category_name,
          live_since: r.live_since, last_event_at: r.last_event_at,
          authorization_revoked: r.authorization_revoked, ...old.get(r.id), labels: r.labels,
        });
      }
      return next; // removed creators leave the wall
    });
    const bad = await api<SubscriptionHealth[]>(token, "GET", "/subscriptions/unhealthy");
    const byCreator = new Map<string, string[]>();
    for (const b of bad) byCreator.set(b.creator_id, [...(byCreator.get(b.creator_id) ?? []), `${b.type.replace("channel.", "")} events: ${b.status.replaceAll("_", " ")}`]);
    setHealth(byCreator);
  }, [token]);

  const loadHistory = useCallback(async () => {
    const page = await api<EventsPage>(token, "GET", "/events?limit=200");
    setEvents(page.items.slice().reverse());
  }, [token]);

  useEffect(() => {
    void loadMe();
    void loadHistory();
    void loadRoster();
    const live = new LiveFeed(token, {
      events: (batch) => {
        setEvents((old) => {
          const merged = old.concat(batch.filter((e) => !old.length || e.seq > old[old.length - 1].seq));
          return merged.length > MAX_FEED ? merged.slice(merged.length - MAX_FEED) : merged;
        });
        const last = batch[batch.length - 1];
        setAnnouncement(`${batch.length} new event${batch.length > 1 ? "s" : ""}, latest ${last.type}`);
      },
      state: (s) => setCreators((old) => new Map(old).set(s.creator_id, { ...old.get(s.creator_id), ...s })),
      connection: (status, detail) => {
        setConnection(status);
        if (status === "refused") signOut(detail);
      },
      resync: () => { void loadHistory(); },
    });
    feed.current = live;
    return () => live.close();
  }, [token, signOut, loadHistory, loadMe, loadRoster]);

  const branding = me?.company.branding;
  const style = useMemo(() => {
    const primary = branding?.primary_color ?? "#3b3b98";
    const accent = branding?.accent_color ?? "#16a085";
    return {
      "--brand": primary,
      "--on-brand": readableOn(primary),
      "--accent": accent,
      "--on-accent": readableOn(accent),
    } as React.CSSProperties;
  }, [branding]);

  const lastEventByCreator = useMemo(() => {
    const map = new Map<string, FeedEvent[]>();
    for (const e of events) if (e.creator_id) map.set(e.creator_id, [...(map.get(e.creator_id) ?? []).slice(-4), e]);
    return map;
  }, [events]);

  return (
    <div className="app" style={style}>
      <header className="topbar">
        {branding?.logo_url && <img className="logo" src={branding.logo_url} alt="" />}
        <h1 data-testid="company-name">{me?.company.name ?? "…"}</h1>
        <nav aria-label="Pages">
          {(["wall", "feed", ...(me && atLeast(me.role, "admin") ? ["admin"] : [])] as Page[]).map((p) => (
            <button key={p} aria-current={page === p} onClick={() => setPage(p)} data-testid={`nav-${p}`}>
              {p === "admin" ? "Settings & admin" : p[0].toUpperCase() + p.slice(1)}
            </button>
          ))}
        </nav>
        <span className={`connection ${connection.replace(" ", "-")}`} data-testid="connection" role="status">
          {connection}
        </span>
        <span className="who">{me ? `${me.subject} · ${me.role}` : ""}</span>
        <button className="signout" onClick={() => signOut()}>Sign out</button>
      </header>
      <div className="sr-only" aria-live="polite">{announcement}</div>
      <RefreshBanner token={token} feed={feed} />
      {page === "wall" && <Wall creators={[...creators.values()].filter((c) => c.login)} recent={lastEventByCreator} health={health} />}
      {page === "feed" && <Feed token={token} events={events} creators={creators} role={me?.role ?? "viewer"} />}
      {page === "admin" && me && <Admin token={token} me={me} onChanged={() => { void loadMe(); void loadRoster(); }} />}
    </div>
  );
}


function expiresAt(token: string): number | null {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.exp === "number" ? payload.exp * 1000 : null;
  } catch {
    return null;
  }
}

// Before the token runs out, offer to paste a fresh one; it is handed to the live socket.
function RefreshBanner({ token, feed }: { token: string; feed: React.RefObject<LiveFeed | null> }) {
  const [now, setNow] = useState(Date.now());
  const [current, setCurrent] = useState(token);
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), 15_000); return () => clearInterval(t); }, []);
  const exp = expiresAt(current);
  if (!exp || exp - now > 10 * 60_000) return null;
  return (
    <div className="banner" role="alert">
      Your session ends in {Math.max(0, Math.round((exp - now) / 60_000))} min.
      <input value={value} onChange={(e) => setValue(e.target.value)} placeholder="paste a new token" aria-label="New token" />
      <button onClick={async () => {
        const ok = await feed.current?.refreshToken(value.trim());
        if (ok) { sessionStorage.setItem("controlroom.token", value.trim()); setCurrent(value.trim()); setValue(""); setError(""); }
        else setError("That token was refused");
      }}>Refresh</button>
      {error && <span>{error}</span>}
    </div>
  );
}
