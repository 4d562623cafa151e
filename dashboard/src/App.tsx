import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError } from "./api";
import { brandFor } from "./contrast";
import { ThemeToggle, toggleTheme, useTheme } from "./theme";
import { LiveFeed } from "./livefeed";
import { short } from "./words";
import { Wall } from "./Wall";
import { TvWall } from "./Tv";
import { Feed } from "./Feed";
import { Admin } from "./Admin";
import { Analytics, analyticsInHash } from "./Analytics";
import type { AlertPrefs } from "./alerting";
import { loadPrefs, notify, savePrefs, tone } from "./alerting";
import { IncidentDrawer, IncidentPanel } from "./Incidents";
import { CompanyPicker, Invite, NoCompany, SignIn } from "./SignIn";
import type { AuthConfig, PendingInvite, SessionInfo } from "./session";
import { AuthError, authConfig, devSession, logout, reasonOf, refresh, Session } from "./session";
import type {
  Connection, Creator, CreatorState, EventsPage, FeedEvent, Incident, IncidentsPage, Me, SubscriptionHealth, ViewerSample, ViewersOut,
} from "./types";
import { atLeast } from "./types";

const DEV_TOKEN_KEY = "controlroom.token"; // development tokens only (DEV_TOKEN_SIGN_IN)
const INVITE_KEY = "controlroom.invite"; // survives the round trip through the identity provider
const MAX_FEED = 5000;
const ROSTER_POLL_MS = 30_000;
const SPARK_SECONDS = 3600;
const OPEN_INCIDENT_KEY = "controlroom.open-incident"; // a notification's link, kept through a sign-in

// `#/tv` (also `#/tv?cycle=<seconds>`): the wall as a kiosk for the operations room's screen
function tvInHash(): boolean {
  return /^#\/tv(\?.*)?$/.test(window.location.hash);
}

// `#/incidents/<id>` (the notifications' link back): the wall with that incident's details
function incidentInHash(): string | null {
  return /^#\/incidents\/([0-9a-fA-F-]{36})$/.exec(window.location.hash)?.[1] ?? null;
}
{
  const linked = incidentInHash();
  if (linked) sessionStorage.setItem(OPEN_INCIDENT_KEY, linked);
}

// `#invite=<company>.<token>` and, in development, `#token=<jwt>`: read once, then taken out
// of the address bar so they are not bookmarked or shared by accident.
function readLink(): { invite: PendingInvite | null; devToken: string | null } {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const raw = hash.get("invite");
  const devToken = hash.get("token");
  if (raw || devToken) history.replaceState(null, "", window.location.pathname);
  if (raw) {
    const dot = raw.indexOf(".");
    if (dot > 0) sessionStorage.setItem(INVITE_KEY, JSON.stringify({ company: raw.slice(0, dot), token: raw.slice(dot + 1) }));
  }
  let invite: PendingInvite | null = null;
  try {
    invite = JSON.parse(sessionStorage.getItem(INVITE_KEY) ?? "null");
  } catch {
    invite = null;
  }
  return { invite, devToken };
}

type Phase =
  | { kind: "loading" }
  | { kind: "signed-out"; reason?: string; notice?: string }
  | { kind: "invite"; info: SessionInfo | null }
  | { kind: "pick"; info: SessionInfo }
  | { kind: "no-company"; info: SessionInfo }
  | { kind: "in"; session: Session };

export function App() {
  const [config, setConfig] = useState<AuthConfig | null>(null);
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  const [invite, setInvite] = useState<PendingInvite | null>(null);
  const current = useRef<Session | null>(null);

  const signedOut = useCallback((reason?: string, notice?: string) => {
    current.current?.close();
    current.current = null;
    sessionStorage.removeItem(DEV_TOKEN_KEY);
    setPhase({ kind: "signed-out", reason, notice });
  }, []);

  const enter = useCallback((info: SessionInfo, pending: PendingInvite | null) => {
    current.current?.close();
    current.current = null;
    if (pending) setPhase({ kind: "invite", info });
    else if (info.company) {
      const session = new Session(info, (reason) => signedOut(reason));
      current.current = session;
      setPhase({ kind: "in", session });
    } else if (info.companies.some((c) => c.status === "active")) setPhase({ kind: "pick", info });
    else if (info.companies.length) {
      const names = info.companies.map((c) => c.name).join(", ");
      signedOut(`${names} ${info.companies.length > 1 ? "are" : "is"} ${info.companies[0].status === "deleting" ? "being deleted" : "suspended"}; ask your platform operator.`);
    } else setPhase({ kind: "no-company", info });
  }, [signedOut]);

  const startDevSession = useCallback((token: string) => {
    sessionStorage.setItem(DEV_TOKEN_KEY, token);
    current.current?.close();
    const session = devSession(token, (reason) => signedOut(reason));
    current.current = session;
    setPhase({ kind: "in", session });
  }, [signedOut]);

  useEffect(() => {
    let cancelled = false;
    void (async () => {
      const link = readLink();
      const cfg = await authConfig();
      if (cancelled) return;
      setConfig(cfg);
      setInvite(link.invite);
      const devToken = cfg.dev_token_sign_in ? (link.devToken ?? sessionStorage.getItem(DEV_TOKEN_KEY)) : null;
      if (devToken) { startDevSession(devToken); return; }
      try {
        const info = await refresh(null);
        if (!cancelled) enter(info, link.invite);
      } catch (err) {
        if (cancelled) return;
        if (link.invite) setPhase({ kind: "invite", info: null });
        else signedOut(err instanceof AuthError && err.status === 401 ? undefined : reasonOf(err));
      }
    })();
    // an invitation link opened in this tab once it is running: start over with it
    const linked = () => { if (/^#(invite|token)=/.test(window.location.hash)) window.location.reload(); };
    window.addEventListener("hashchange", linked);
    return () => { cancelled = true; window.removeEventListener("hashchange", linked); };
  }, [enter, signedOut, startDevSession]);

  const [switchError, setSwitchError] = useState("");
  const switchTo = useCallback(async (companyId: string) => {
    setSwitchError("");
    try {
      enter(await refresh(companyId), null);
    } catch (err) {
      const name = current.current?.info.companies.find((c) => c.id === companyId)?.name;
      // refused for that company only: stay where we are, and say why
      if (current.current && err instanceof AuthError && err.status === 403) setSwitchError(reasonOf(err, name));
      else signedOut(reasonOf(err, name));
    }
  }, [enter, signedOut]);

  const signOut = useCallback(async () => {
    const dev = current.current !== null && !current.current.renewable;
    current.current?.close();
    if (!dev) await logout();
    signedOut(undefined, "You have signed out.");
  }, [signedOut]);

  const inviteDone = useCallback((info: SessionInfo | null) => {
    sessionStorage.removeItem(INVITE_KEY);
    setInvite(null);
    if (info) enter(info, null);
    else setPhase({ kind: "signed-out" });
  }, [enter]);

  if (phase.kind === "loading" || !config) return <main className="signin" aria-busy="true"><h1>Creator Control Room</h1></main>;
  switch (phase.kind) {
    case "signed-out":
      return <SignIn config={config} reason={phase.reason} notice={phase.notice} onToken={startDevSession} />;
    case "invite":
      return invite
        ? <Invite config={config} invite={invite} info={phase.info} onDone={inviteDone} onSignOut={() => void signOut()} />
        : <SignIn config={config} onToken={startDevSession} />;
    case "pick":
      return <CompanyPicker info={phase.info} onPick={(id) => void switchTo(id)} onSignOut={() => void signOut()} />;
    case "no-company":
      return <NoCompany info={phase.info} onSignOut={() => void signOut()} />;
    case "in":
      return (
        <ControlRoom
          key={phase.session.company?.id ?? "none"}
          session={phase.session}
          onSwitch={(id) => void switchTo(id)}
          switchError={switchError}
          signOut={() => void signOut()}
          refused={signedOut}
        />
      );
  }
}

type Page = "wall" | "feed" | "analytics" | "admin" | "tv";
const PAGE_KEYS: Record<string, Page> = { "1": "wall", "2": "feed", "3": "analytics", "4": "admin" };
const EPM_WINDOW_MS = 60_000;

// a 403 for a role is an answer, not a lost session; a suspended company's is
function isLost(e: unknown): e is ApiError {
  return e instanceof ApiError && (e.status === 401 || e.code === "suspended");
}

function ControlRoom({ session, onSwitch, switchError, signOut, refused }: {
  session: Session;
  onSwitch: (companyId: string) => void;
  switchError: string;
  signOut: () => void;
  refused: (reason: string) => void;
}) {
  const [me, setMe] = useState<Me | null>(null);
  const [creators, setCreators] = useState<Map<string, CreatorState>>(new Map());
  const [events, setEvents] = useState<FeedEvent[]>([]);
  const [connection, setConnection] = useState<Connection>("connecting");
  const [page, setPage] = useState<Page>(() => (tvInHash() ? "tv" : analyticsInHash() ? "analytics" : "wall"));
  const [help, setHelp] = useState(false);
  const arrivals = useRef<number[]>([]); // when each live event arrived, for events per minute
  const [perMinute, setPerMinute] = useState(0);
  const [announcement, setAnnouncement] = useState("");
  const feed = useRef<LiveFeed | null>(null);
  const lastRescue = useRef(0);
  const [incidents, setIncidents] = useState<Map<string, Incident>>(new Map());
  const [incidentsLoaded, setIncidentsLoaded] = useState(false);
  const [lastResolved, setLastResolved] = useState<Incident | null>(null); // an open drawer keeps showing it
  const [samples, setSamples] = useState<Map<string, ViewerSample[]>>(new Map());
  const [pulseAt, setPulseAt] = useState<string | null>(null);
  const [openIncident, setOpenIncident] = useState<string | null>(() => {
    const id = incidentInHash() ?? sessionStorage.getItem(OPEN_INCIDENT_KEY);
    sessionStorage.removeItem(OPEN_INCIDENT_KEY);
    return id;
  });
  const [prefs, setPrefsState] = useState<AlertPrefs>(loadPrefs);
  const prefsRef = useRef(prefs);
  const setPrefs = useCallback((p: AlertPrefs) => { prefsRef.current = p; savePrefs(p); setPrefsState(p); }, []);
  const known = useRef<Set<string>>(new Set()); // incidents seen, so each alerts once
  const creatorsRef = useRef(creators);
  creatorsRef.current = creators;

  // Refused (a REST 401, a socket refused or closed by the server): a fresh access token may
  // be all it takes; if the session itself is refused, it ends with the server's reason. A
  // socket refused again right after a successful renewal ends it too (no reconnect loop).
  const lost = useCallback(async (detail?: string, socket = false) => {
    if (socket) {
      const now = Date.now();
      if (now - lastRescue.current < 30_000) { refused(detail ?? "Your session has ended; sign in again."); return; }
      lastRescue.current = now;
    }
    if (!(await session.renew())) {
      if (!session.renewable) refused(detail ?? "Your session has ended."); // a development token
      return;
    }
    if (socket) feed.current?.reconnect();
  }, [session, refused]);

  const loadMe = useCallback(async () => {
    try {
      setMe(await api<Me>(session, "GET", "/me"));
    } catch (e) {
      if (isLost(e)) void lost(e.message);
    }
  }, [session, lost]);

  const [health, setHealth] = useState<Map<string, string[]>>(new Map());
  const loadRoster = useCallback(async () => {
    let rows: Creator[];
    try {
      rows = await api<Creator[]>(session, "GET", "/creators");
    } catch (e) {
      if (isLost(e)) void lost(e.message);
      return;
    }
    // labels and consent come from the REST API; live state from the socket's snapshot
    setCreators((old) => {
      const next = new Map<string, CreatorState>();
      for (const r of rows) {
        next.set(r.id, {
          creator_id: r.id, twitch_user_id: r.twitch_user_id, login: r.twitch_login,
          display_name: r.display_name, status: r.status, title: r.title, category_name: r.category_name,
          live_since: r.live_since, last_event_at: r.last_event_at,
          authorization_revoked: r.authorization_revoked, ...old.get(r.id), labels: r.labels,
          authorization: r.authorization, subscriptions: r.subscriptions, avatar_url: r.avatar_url,
          ...newerViewers(r, old.get(r.id)),
        });
      }
      return next; // removed creators leave the wall
    });
    const bad = await api<SubscriptionHealth[]>(session, "GET", "/subscriptions/unhealthy").catch(() => []);
    const byCreator = new Map<string, string[]>();
    // refused for authorization is said once, by the consent line ("needs authorization: ...")
    for (const b of bad.filter((x) => x.status !== "authorization_missing")) {
      byCreator.set(b.creator_id, [...(byCreator.get(b.creator_id) ?? []), `${b.type.replace("channel.", "")} events: ${b.status.replaceAll("_", " ")}`]);
    }
    setHealth(byCreator);
  }, [session, lost]);

  const loadHistory = useCallback(async () => {
    try {
      const page = await api<EventsPage>(session, "GET", "/events?limit=200");
      setEvents(page.items.slice().reverse());
    } catch (e) {
      if (isLost(e)) void lost(e.message);
    }
  }, [session, lost]);

  // open and acknowledged incidents; resolved ones leave the panel
  const loadIncidents = useCallback(async () => {
    let page: IncidentsPage;
    try {
      page = await api<IncidentsPage>(session, "GET", "/incidents?status=open&status=acknowledged&limit=200");
    } catch (e) {
      if (isLost(e)) void lost(e.message);
      return;
    }
    for (const i of page.items) known.current.add(i.id);
    setIncidents((old) => {
      const next = new Map(page.items.map((i) => [i.id, i]));
      // a live update newer than this answer wins (it may have arrived while we asked)
      for (const [id, i] of old) {
        const fetched = next.get(id);
        if (fetched && Date.parse(i.updated_at) > Date.parse(fetched.updated_at)) next.set(id, i);
      }
      return next;
    });
    setIncidentsLoaded(true);
  }, [session, lost]);

  const applyIncident = useCallback((i: Incident) => {
    if (i.status === "resolved") setLastResolved(i);
    setIncidents((old) => {
      const was = old.get(i.id);
      if (was && Date.parse(was.updated_at) > Date.parse(i.updated_at)) return old; // an older copy
      const next = new Map(old);
      if (i.status === "resolved") next.delete(i.id);
      else next.set(i.id, i);
      return next;
    });
  }, []);

  const openIncidentDrawer = useCallback((id: string) => {
    setPage("wall");
    setOpenIncident(id);
    if (incidentInHash() !== id) window.location.hash = `/incidents/${id}`;
  }, []);
  const closeIncidentDrawer = useCallback(() => {
    setOpenIncident(null);
    if (incidentInHash()) history.replaceState(null, "", window.location.pathname + window.location.search);
  }, []);
  useEffect(() => {
    const follow = () => {
      const id = incidentInHash();
      if (id) { setPage("wall"); setOpenIncident(id); }
      else if (analyticsInHash()) setPage("analytics");
      else if (tvInHash()) setPage("tv");
      else setPage((p) => (p === "tv" ? "wall" : p));
    };
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);

  const loadViewers = useCallback(async () => {
    try {
      const answer = await api<ViewersOut>(session, "GET", "/viewers?minutes=60");
      setSamples(new Map(Object.entries(answer.creators)));
    } catch (e) {
      if (isLost(e)) void lost(e.message);
    }
  }, [session, lost]);

  useEffect(() => {
    void loadMe();
    void loadHistory();
    void loadRoster();
    void loadIncidents();
    void loadViewers();
    const live = new LiveFeed(session.token(), {
      events: (batch) => {
        setEvents((old) => {
          const merged = old.concat(batch.filter((e) => !old.length || e.seq > old[old.length - 1].seq));
          return merged.length > MAX_FEED ? merged.slice(merged.length - MAX_FEED) : merged;
        });
        const now = Date.now();
        for (let i = 0; i < batch.length; i += 1) arrivals.current.push(now);
        const last = batch[batch.length - 1];
        setAnnouncement(`${batch.length} new event${batch.length > 1 ? "s" : ""}, latest: ${short(last)}`);
      },
      state: (s) => setCreators((old) => {
        const was = old.get(s.creator_id);
        // a revocation (or a new grant) changes what the roster says about consent: ask now
        if (was && Boolean(s.authorization_revoked) !== Boolean(was.authorization_revoked)) void loadRoster();
        return new Map(old).set(s.creator_id, { ...was, ...s });
      }),
      connection: (status, detail) => {
        setConnection(status);
        if (status === "refused") void lost(detail, true);
      },
      resync: () => { void loadHistory(); },
      incident: (i) => {
        const fresh = !known.current.has(i.id);
        known.current.add(i.id);
        applyIncident(i);
        if (fresh && i.status === "open" && i.severity !== "info") {
          const who = i.creator_id ? creatorsRef.current.get(i.creator_id)?.display_name ?? null : null;
          setAnnouncement(`New ${i.severity} incident${who ? ` for ${who}` : ""}: ${i.title}`);
          if (prefsRef.current.sound) tone(i.severity);
          if (prefsRef.current.notify) notify(i, who, openIncidentDrawer);
        }
      },
      viewers: (update) => {
        setPulseAt(update.at);
        const at = Math.floor(Date.parse(update.at) / 1000);
        setSamples((old) => {
          const next = new Map(old);
          for (const s of update.samples) {
            const list = (next.get(s.creator_id) ?? []).filter(([t]) => t >= at - SPARK_SECONDS && t !== at);
            next.set(s.creator_id, [...list, [at, s.live ? s.viewers : null]]);
          }
          return next;
        });
        setCreators((old) => {
          const next = new Map(old);
          for (const s of update.samples) {
            const c = next.get(s.creator_id);
            if (c) {
              next.set(s.creator_id, {
                ...c, viewers: s.live ? s.viewers : null, viewers_at: update.at,
                ...(s.preview_url !== undefined ? { preview_url: s.live ? s.preview_url : null } : {}),
              });
            }
          }
          return next;
        });
      },
      // incidents carry no seq to resume from: ask again for the whole list
      reconnected: () => { void loadIncidents(); void loadViewers(); },
    });
    feed.current = live;
    const renewed = session.onRenew((token) => void live.refreshToken(token));
    // consent and subscription health change without an event: poll, and look again on focus
    const poll = window.setInterval(() => void loadRoster(), ROSTER_POLL_MS);
    const focus = () => void loadRoster();
    window.addEventListener("focus", focus);
    return () => {
      renewed();
      window.clearInterval(poll);
      window.removeEventListener("focus", focus);
      live.close();
    };
  }, [session, lost, loadHistory, loadMe, loadRoster, loadIncidents, loadViewers, applyIncident, openIncidentDrawer]);

  // events per minute, counted by arrival over the last minute (the summary strip's figure)
  useEffect(() => {
    const t = window.setInterval(() => {
      const since = Date.now() - EPM_WINDOW_MS;
      const kept = arrivals.current.filter((at) => at >= since);
      arrivals.current = kept;
      setPerMinute(kept.length);
    }, 2000);
    return () => window.clearInterval(t);
  }, []);

  const changed = useCallback(() => { void loadMe(); void loadRoster(); }, [loadMe, loadRoster]);
  // analytics and TV mode have addresses of their own (#/analytics[/<creator>], #/tv); the others do not
  const goTo = useCallback((p: Page) => {
    setPage(p);
    if (p === "analytics") { if (!analyticsInHash()) window.location.hash = "/analytics"; }
    else if (p === "tv") { if (!tvInHash()) window.location.hash = "/tv"; }
    else if (analyticsInHash() || tvInHash()) history.replaceState(null, "", window.location.pathname + window.location.search);
  }, []);

  // Shortcuts for the whole control room (page-local ones live on their pages); never while typing
  const isAdmin = Boolean(me && atLeast(me.role, "admin"));
  useEffect(() => {
    const onKey = (ev: KeyboardEvent) => {
      if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      if (ev.key === "?") { setHelp((h) => !h); ev.preventDefault(); return; }
      if (ev.key === "D" && ev.shiftKey) { toggleTheme(); ev.preventDefault(); return; }
      if (ev.shiftKey) return;
      const target = PAGE_KEYS[ev.key];
      if (target && (target !== "admin" || isAdmin)) { goTo(target); ev.preventDefault(); }
      else if (ev.key === "t") { goTo(page === "tv" ? "wall" : "tv"); ev.preventDefault(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [goTo, isAdmin, page]);
  const branding = me?.company.branding;
  const theme = useTheme();
  // the company's colours, moved in lightness until they stand out on this theme (hue kept)
  const style = useMemo(() => {
    const primary = brandFor(branding?.primary_color ?? "#3b3b98", theme);
    const accent = brandFor(branding?.accent_color ?? "#16a085", theme);
    return {
      "--brand": primary.color,
      "--on-brand": primary.on,
      "--accent": accent.color,
      "--on-accent": accent.on,
    } as React.CSSProperties;
  }, [branding, theme]);

  // each creator's last five events, oldest first: read from the newest end, one array each
  // (copying a creator's list per event was thousands of arrays per batch at 5,000 events)
  const lastEventByCreator = useMemo(() => {
    const map = new Map<string, FeedEvent[]>();
    for (let i = events.length - 1; i >= 0; i -= 1) {
      const e = events[i];
      if (!e.creator_id) continue;
      const list = map.get(e.creator_id);
      if (!list) map.set(e.creator_id, [e]);
      else if (list.length < 5) list.push(e);
    }
    for (const list of map.values()) list.reverse();
    return map;
  }, [events]);

  const byCreator = useMemo(() => {
    const map = new Map<string, Incident[]>();
    for (const i of incidents.values()) if (i.creator_id) map.set(i.creator_id, [...(map.get(i.creator_id) ?? []), i]);
    return map;
  }, [incidents]);

  const companies = session.info.companies.filter((c) => c.status === "active" || c.id === session.company?.id);
  const person = session.info.person;
  const onWall = useMemo(() => [...creators.values()].filter((c) => c.login), [creators]);
  const wallProps = {
    creators: onWall, recent: lastEventByCreator, health, incidents: byCreator, samples,
    onOpenIncident: openIncidentDrawer, eventsPerMinute: perMinute,
  };
  const helpDialog = help && <ShortcutHelp isAdmin={isAdmin} onClose={() => setHelp(false)} />;
  if (page === "tv") {
    return (
      <div className="app tv-app" style={style}>
        <div className="sr-only" aria-live="polite">{announcement}</div>
        <TvWall {...wallProps} canManage={isAdmin} connection={connection} incidentsList={[...incidents.values()]}
          companyName={me?.company.name ?? ""} logoUrl={branding?.logo_url ?? null} onExit={() => goTo("wall")} />
        {helpDialog}
      </div>
    );
  }
  return (
    <div className="app" style={style}>
      <header className="topbar">
        {branding?.logo_url && <img className="logo" src={branding.logo_url} alt="" />}
        <h1 data-testid="company-name">{me?.company.name ?? "…"}</h1>
        {companies.length > 1 && (
          <label className="switcher">
            <span className="sr-only">Company</span>
            <select value="" onChange={(e) => { if (e.target.value) onSwitch(e.target.value); }} data-testid="company-switcher">
              <option value="" disabled>Switch company…</option>
              {companies.filter((c) => c.id !== session.company?.id).map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
            </select>
          </label>
        )}
        <nav aria-label="Pages">
          {(["wall", "feed", "analytics", ...(me && atLeast(me.role, "admin") ? ["admin"] : [])] as Page[]).map((p) => (
            <button key={p} aria-current={page === p} onClick={() => goTo(p)} data-testid={`nav-${p}`}>
              {p === "admin" ? "Settings & admin" : p[0].toUpperCase() + p.slice(1)}
            </button>
          ))}
        </nav>
        <span className={`connection ${connection.replace(" ", "-")}`} data-testid="connection" role="status">
          {connection}
        </span>
        <span className="who" data-testid="who">
          {me ? `${person.display_name || person.email || me.subject} · ${me.role}` : ""}
        </span>
        <ThemeToggle />
        <button className="tv-enter" onClick={() => goTo("tv")} data-testid="tv-enter" title="TV mode: full screen, no controls (t)">TV mode</button>
        <button className="help-button" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts (?)" title="Keyboard shortcuts (?)" data-testid="help">?</button>
        <button className="signout" onClick={signOut} data-testid="sign-out">Sign out</button>
      </header>
      {helpDialog}
      <div className="sr-only" aria-live="polite">{announcement}</div>
      {switchError && <div className="banner" role="alert" data-testid="switch-error">{switchError}</div>}
      {!session.renewable && <RefreshBanner session={session} feed={feed} />}
      {page === "wall" && (
        <div className="wall-layout">
          <Wall {...wallProps} canManage={isAdmin} />
          <IncidentPanel incidents={[...incidents.values()]} creators={creators} role={me?.role ?? "viewer"} meUserId={me?.user_id ?? null}
            auth={session} loaded={incidentsLoaded} onOpen={openIncidentDrawer} onChanged={applyIncident} prefs={prefs} setPrefs={setPrefs} />
          {openIncident && (
            <IncidentDrawer key={openIncident} id={openIncident} live={incidents.get(openIncident) ?? (lastResolved?.id === openIncident ? lastResolved : undefined)} auth={session} role={me?.role ?? "viewer"}
              meUserId={me?.user_id ?? null} creators={creators} onClose={closeIncidentDrawer} onChanged={applyIncident} />
          )}
        </div>
      )}
      {page === "feed" && <Feed auth={session} events={events} creators={creators} />}
      {page === "analytics" && <Analytics auth={session} creators={creators} lastSeq={events.length ? events[events.length - 1].seq : null} lastPulse={pulseAt} />}
      {page === "admin" && me && <Admin auth={session} me={me} onChanged={changed} />}
    </div>
  );
}

// typing in a field: the shortcuts stay out of the way
function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return Boolean(el && (el.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)));
}

const SHORTCUTS: [string, string][] = [
  ["1", "Wall"], ["2", "Feed"], ["3", "Analytics"], ["4", "Settings & admin (admins)"],
  ["t", "TV mode on or off"], ["Shift + D", "Dark or light theme"], ["?", "This list"],
  ["/", "Filter (wall and feed)"], ["s", "Next sort order (wall)"], ["d", "Comfortable or dense tiles (wall)"],
  ["Arrow keys", "Move between tiles (wall)"], ["Enter", "Open a tile's incident, or an event's details"],
  ["p", "Pause or resume the feed"], ["Esc", "Close a dialog or drawer; leave TV mode"],
];

function ShortcutHelp({ isAdmin, onClose }: { isAdmin: boolean; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog ref={ref} className="shortcut-help" aria-labelledby="shortcut-title" onClose={onClose} data-testid="shortcut-help">
      <h2 id="shortcut-title">Keyboard shortcuts</h2>
      <table>
        <tbody>
          {SHORTCUTS.filter(([k]) => isAdmin || k !== "4").map(([k, what]) => (
            <tr key={k}><th scope="row"><kbd>{k}</kbd></th><td>{what}</td></tr>
          ))}
        </tbody>
      </table>
      <p className="muted">Shortcuts do nothing while you type in a field.</p>
      <button onClick={onClose} autoFocus>Close</button>
    </dialog>
  );
}

// the roster's viewer count, unless the socket brought a newer one
// (the preview image travels with the samples, so it follows the same rule)
function newerViewers(r: Creator, was: CreatorState | undefined): Pick<CreatorState, "viewers" | "viewers_at" | "preview_url"> {
  if (was?.viewers_at && (!r.viewers_at || Date.parse(was.viewers_at) >= Date.parse(r.viewers_at))) return {};
  return { viewers: r.viewers, viewers_at: r.viewers_at, preview_url: r.preview_url };
}

// A development token is not renewed: before it runs out, offer to paste a fresh one; it is
// handed to the live socket.
function RefreshBanner({ session, feed }: { session: Session; feed: React.RefObject<LiveFeed | null> }) {
  const [now, setNow] = useState(Date.now());
  const [exp, setExp] = useState(() => Date.now() + session.info.expires_in * 1000);
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), 15_000); return () => clearInterval(t); }, []);
  if (exp - now > 10 * 60_000) return null;
  return (
    <div className="banner" role="alert">
      Your session ends in {Math.max(0, Math.round((exp - now) / 60_000))} min.
      <input value={value} onChange={(e) => setValue(e.target.value)} placeholder="paste a new token" aria-label="New token" />
      <button onClick={async () => {
        const fresh = value.trim();
        const ok = await feed.current?.refreshToken(fresh);
        if (ok) {
          const next = devSession(fresh, () => undefined);
          session.info = { ...session.info, access_token: fresh, expires_in: next.info.expires_in };
          next.close();
          sessionStorage.setItem(DEV_TOKEN_KEY, fresh);
          setExp(Date.now() + session.info.expires_in * 1000);
          setValue(""); setError("");
        } else setError("That token was refused");
      }}>Refresh</button>
      {error && <span>{error}</span>}
    </div>
  );
}
