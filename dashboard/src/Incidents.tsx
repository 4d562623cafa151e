// The wall's incident panel, the details drawer, and the severity marks the tiles share.
import { useCallback, useEffect, useId, useRef, useState } from "react";
import type { Credentials } from "./api";
import { api, errorText } from "./api";
import type { AlertPrefs } from "./alerting";
import { askNotificationPermission, notificationsSupported, unlockSound } from "./alerting";
import { TopicIcon } from "./icons";
import { sentence, typeLabel } from "./words";
import type { CreatorState, Delivery, Incident, IncidentDetail, Severity } from "./types";
import { atLeast, severityRank } from "./types";

const OPERATOR_ONLY = "Operators, admins and owners acknowledge, resolve and assign incidents";
const DETAIL_POLL_MS = 10_000; // deliveries change without an incident event

export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Shape as well as colour: an octagon, a triangle, a circle. */
export function SeverityIcon({ severity, size = 16 }: { severity: Severity; size?: number }) {
  const shape = severity === "critical"
    ? <polygon points="5,1 11,1 15,5 15,11 11,15 5,15 1,11 1,5" />
    : severity === "warning"
      ? <polygon points="8,1 15.5,14.5 0.5,14.5" />
      : <circle cx="8" cy="8" r="7" />;
  return (
    <svg className={`sev-icon ${severity}`} width={size} height={size} viewBox="0 0 16 16" aria-hidden="true" focusable="false">
      {shape}
      {severity === "info"
        ? <><rect x="7.1" y="7" width="1.8" height="5" /><rect x="7.1" y="3.6" width="1.8" height="1.8" /></>
        : <><rect x="7.1" y={severity === "warning" ? 5.5 : 4} width="1.8" height="5" /><rect x="7.1" y={severity === "warning" ? 11.4 : 10.4} width="1.8" height="1.8" /></>}
    </svg>
  );
}

export function SeverityTag({ severity }: { severity: Severity }) {
  return <span className={`sev ${severity}`} data-testid="severity"><SeverityIcon severity={severity} />{severity}</span>;
}

/** A tile's mark: how many unresolved incidents, and the worst of them. */
export function IncidentBadge({ list, onOpen }: { list: Incident[]; onOpen: (id: string) => void }) {
  if (!list.length) return null;
  const worst = list.reduce((a, b) => (severityRank(b.severity) > severityRank(a.severity) ? b : a));
  const newest = list.reduce((a, b) => (Date.parse(b.opened_at) > Date.parse(a.opened_at) ? b : a));
  const label = `${list.length} unresolved incident${list.length > 1 ? "s" : ""}, highest ${worst.severity}`;
  return (
    <button type="button" className={`incident-badge ${worst.severity}`} data-testid="incident-badge" data-severity={worst.severity}
      aria-label={`${list.length} ${worst.severity}: ${label}, open the newest`} title={label} onClick={(e) => { e.stopPropagation(); onOpen(newest.id); }}>
      <SeverityIcon severity={worst.severity} size={14} />
      <span data-testid="incident-count">{list.length}</span>{" "}
      <span className="badge-sev">{worst.severity}</span>
    </button>
  );
}

function creatorName(creators: Map<string, CreatorState>, id: string | null): string {
  if (!id) return "Company-wide";
  return creators.get(id)?.display_name ?? "Unknown creator";
}

function assigneeText(i: Incident, meUserId: string | null): string | null {
  if (!i.assignee_user_id) return null;
  return i.assignee_user_id === meUserId ? "assigned to you" : "assigned to a teammate";
}

function useTicking(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), ms); return () => clearInterval(t); }, [ms]);
  return now;
}

// Acknowledge / Resolve / Assign: one place that calls the API and hands back the new state.
function useActions(auth: Credentials, onChanged: (i: Incident) => void) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState("");
  const run = useCallback(async (key: string, method: string, path: string, body?: unknown) => {
    setBusy(key);
    setError("");
    try {
      onChanged(await api<Incident>(auth, method, path, body));
      return true;
    } catch (err) {
      setError(errorText(err));
      return false;
    } finally {
      setBusy(null);
    }
  }, [auth, onChanged]);
  return { busy, error, run };
}

function Actions({ i, auth, canAct, meUserId, onChanged, compact }: {
  i: Incident; auth: Credentials; canAct: boolean; meUserId: string | null; onChanged: (i: Incident) => void; compact?: boolean;
}) {
  const { busy, error, run } = useActions(auth, onChanged);
  const [resolution, setResolution] = useState("");
  const guard = (key: string, method: string, path: string, body?: unknown) => () => {
    if (canAct && !busy) void run(key, method, path, body);
  };
  const deny = canAct ? {} : { "aria-disabled": true, title: OPERATOR_ONLY };
  const mine = i.assignee_user_id !== null && i.assignee_user_id === meUserId;
  const what = `incident ${i.number}`;
  return (
    <div className="incident-actions">
      {i.status === "open" && (
        <button type="button" className="act" {...deny} onClick={guard("ack", "POST", `/incidents/${i.id}/acknowledge`)}
          aria-label={`Acknowledge ${what}`} data-testid="incident-ack">{busy === "ack" ? "Acknowledging…" : "Acknowledge"}</button>
      )}
      {i.status !== "resolved" && (
        <button type="button" className="act" {...deny}
          onClick={guard("resolve", "POST", `/incidents/${i.id}/resolve`, { resolution: resolution.trim() || null })}
          aria-label={`Resolve ${what}`} data-testid="incident-resolve">{busy === "resolve" ? "Resolving…" : "Resolve"}</button>
      )}
      {(!compact || !mine) && i.status !== "resolved" && meUserId && (
        <button type="button" className="act quiet" {...deny}
          onClick={guard("assign", "PUT", `/incidents/${i.id}/assignee`, { user_id: mine ? null : meUserId })}
          aria-label={mine ? `Unassign ${what}` : `Assign to me: ${what}`} data-testid="incident-assign">
          {mine ? "Unassign" : "Assign to me"}
        </button>
      )}
      {!compact && canAct && i.status !== "resolved" && (
        <input className="resolution" value={resolution} onChange={(e) => setResolution(e.target.value)} maxLength={300}
          placeholder="What resolved it (optional)" aria-label="Resolution, optional" data-testid="incident-resolution" />
      )}
      {error && <span className="error" role="alert">{error}</span>}
    </div>
  );
}

export function IncidentPanel({ incidents, creators, role, meUserId, auth, loaded, onOpen, onChanged, prefs, setPrefs }: {
  incidents: Incident[]; creators: Map<string, CreatorState>; role: string; meUserId: string | null; auth: Credentials;
  loaded: boolean; onOpen: (id: string) => void; onChanged: (i: Incident) => void;
  prefs: AlertPrefs; setPrefs: (p: AlertPrefs) => void;
}) {
  const now = useTicking();
  const canAct = atLeast(role, "operator");
  const [notice, setNotice] = useState("");
  const sorted = [...incidents].sort((a, b) => Date.parse(b.opened_at) - Date.parse(a.opened_at) || b.number - a.number);
  const counts = { critical: 0, warning: 0, info: 0 };
  for (const i of incidents) counts[i.severity] += 1;
  async function toggleNotify() {
    if (prefs.notify) { setPrefs({ ...prefs, notify: false }); return; }
    if (await askNotificationPermission()) { setPrefs({ ...prefs, notify: true }); setNotice(""); }
    else setNotice("The browser refused notifications; allow them in the site settings.");
  }
  return (
    <aside className="incident-panel" aria-labelledby="incidents-heading" data-testid="incident-panel">
      <div className="panel-head">
        <h2 id="incidents-heading">Incidents</h2>
        <span className="counts" aria-label={`${counts.critical} critical, ${counts.warning} warning, ${counts.info} info`}>
          {(["critical", "warning", "info"] as const).map((s) => counts[s] > 0 && (
            <span key={s} className={`count ${s}`}><SeverityIcon severity={s} size={12} />{counts[s]}</span>
          ))}
        </span>
      </div>
      <div className="alert-prefs">
        <label title="A short tone for each new warning or critical incident">
          <input type="checkbox" checked={prefs.sound} data-testid="alert-sound"
            onChange={(e) => { if (e.target.checked) unlockSound(); setPrefs({ ...prefs, sound: e.target.checked }); }} />
          Sound
        </label>
        {notificationsSupported() && (
          <label title="A browser notification for each new warning or critical incident">
            <input type="checkbox" checked={prefs.notify} onChange={() => void toggleNotify()} data-testid="alert-notify" />
            Desktop notifications
          </label>
        )}
        {notice && <span className="error" role="alert">{notice}</span>}
      </div>
      {!loaded && <p className="muted panel-empty">Loading incidents…</p>}
      {loaded && !sorted.length && <p className="muted panel-empty" data-testid="incidents-empty">No open incidents. All quiet.</p>}
      <ol className="incident-list">
        {sorted.map((i) => {
          const assigned = assigneeText(i, meUserId);
          return (
            <li key={i.id} className={`incident ${i.severity} ${i.status}`} data-testid="incident" data-id={i.id} data-status={i.status}>
              <div className="incident-top">
                <SeverityTag severity={i.severity} />
                <span className="creator">{creatorName(creators, i.creator_id)}</span>
                <time dateTime={i.opened_at} title={new Date(i.opened_at).toLocaleString()} data-testid="incident-age">{ago(i.opened_at, now)} ago</time>
              </div>
              <button type="button" className="incident-title" onClick={() => onOpen(i.id)} data-testid="incident-open">
                <span className="number">#{i.number}</span> {i.title}
              </button>
              <div className="incident-meta">
                <span className={`state ${i.status}`} data-testid="incident-status">{i.status}</span>
                {i.event_count > 0 && <span>{i.event_count} event{i.event_count > 1 ? "s" : ""}</span>}
                {assigned && <span data-testid="incident-assignee">{assigned}</span>}
              </div>
              <Actions i={i} auth={auth} canAct={canAct} meUserId={meUserId} onChanged={onChanged} compact />
            </li>
          );
        })}
      </ol>
    </aside>
  );
}

function byChannel(list: Delivery[]): [string, Delivery[]][] {
  const groups = new Map<string, Delivery[]>();
  for (const d of list) groups.set(d.channel_name ?? d.channel_id, [...(groups.get(d.channel_name ?? d.channel_id) ?? []), d]);
  return [...groups.entries()];
}

export function deliveryText(d: Delivery): string {
  const code = d.last_status ? ` (HTTP ${d.last_status})` : "";
  const tries = d.attempts > 1 ? `, ${d.attempts} attempts` : "";
  return `${d.status}${code}${tries}${d.reason ? ` — ${d.reason}` : ""}`;
}

export function IncidentDrawer({ id, live, auth, role, meUserId, creators, onClose, onChanged }: {
  id: string; live: Incident | undefined; auth: Credentials; role: string; meUserId: string | null;
  creators: Map<string, CreatorState>; onClose: () => void; onChanged: (i: Incident) => void;
}) {
  const now = useTicking();
  const [detail, setDetail] = useState<IncidentDetail | null>(null);
  const [error, setError] = useState("");
  const [note, setNote] = useState("");
  const [noteError, setNoteError] = useState("");
  const [saving, setSaving] = useState(false);
  const heading = useId();
  const closeButton = useRef<HTMLButtonElement>(null);
  const canAct = atLeast(role, "operator");

  const load = useCallback(async () => {
    try {
      setDetail(await api<IncidentDetail>(auth, "GET", `/incidents/${id}`));
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  }, [auth, id]);

  // again whenever the incident changes (an event linked, a note, a transition), and now and then
  const version = live?.updated_at;
  useEffect(() => { void load(); }, [load, version]);
  useEffect(() => { const t = setInterval(() => void load(), DETAIL_POLL_MS); return () => clearInterval(t); }, [load]);
  // focus moves into the drawer, and back to what opened it when it closes
  useEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    closeButton.current?.focus();
    return () => { if (opener?.isConnected) opener.focus(); };
  }, [id]);
  useEffect(() => {
    const esc = (e: KeyboardEvent) => { if (e.key === "Escape") onClose(); };
    window.addEventListener("keydown", esc);
    return () => window.removeEventListener("keydown", esc);
  }, [onClose]);

  const changed = useCallback((i: Incident) => { onChanged(i); void load(); }, [onChanged, load]);
  const i: Incident | null = live && detail && Date.parse(live.updated_at) > Date.parse(detail.updated_at) ? live : detail ?? live ?? null;

  async function addNote(e: React.FormEvent) {
    e.preventDefault();
    if (!note.trim()) return;
    setSaving(true);
    setNoteError("");
    try {
      changed(await api<Incident>(auth, "POST", `/incidents/${id}/notes`, { body: note.trim() }));
      setNote("");
    } catch (err) {
      setNoteError(errorText(err));
    } finally {
      setSaving(false);
    }
  }

  return (
    <aside className="drawer" role="dialog" aria-modal="false" aria-labelledby={heading} data-testid="incident-drawer">
      <div className="drawer-head">
        <h2 id={heading}>{i ? <><span className="number">#{i.number}</span> {i.title}</> : "Incident"}</h2>
        <button type="button" ref={closeButton} onClick={onClose} aria-label="Close incident details" data-testid="drawer-close">✕</button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {i && (
        <div className="drawer-body">
          <dl className="facts">
            <dt>Severity</dt><dd><SeverityTag severity={i.severity} /></dd>
            <dt>Status</dt><dd><span className={`state ${i.status}`} data-testid="drawer-status">{i.status}</span>
              {i.resolution && <span className="muted"> — {i.resolution}</span>}</dd>
            <dt>Creator</dt><dd>{creatorName(creators, i.creator_id)}</dd>
            <dt>Rule</dt><dd>{i.rule.replaceAll("_", " ")}</dd>
            <dt>Opened</dt><dd><time dateTime={i.opened_at}>{new Date(i.opened_at).toLocaleString()}</time> ({ago(i.opened_at, now)} ago)</dd>
            {i.acknowledged_at && <><dt>Acknowledged</dt><dd>{new Date(i.acknowledged_at).toLocaleString()}{i.acknowledged_by ? ` by ${i.acknowledged_by}` : ""}</dd></>}
            {i.resolved_at && <><dt>Resolved</dt><dd>{new Date(i.resolved_at).toLocaleString()}{i.resolved_by ? ` by ${i.resolved_by === "auto" ? "itself (the condition cleared)" : i.resolved_by}` : ""}</dd></>}
            <dt>Assignee</dt><dd>{assigneeText(i, meUserId) ?? "nobody"}</dd>
          </dl>
          <Actions i={i} auth={auth} canAct={canAct} meUserId={meUserId} onChanged={changed} />

          <h3>Linked events {detail && <span className="muted">({detail.events.length}{i.event_count > detail.events.length ? ` of ${i.event_count}` : ""})</span>}</h3>
          {detail && !detail.events.length && <p className="muted">No events linked (detected from the audience pulse or a clock).</p>}
          <ol className="linked-events" data-testid="drawer-events">
            {detail?.events.map((e) => (
              <li key={e.seq}>
                <time dateTime={e.occurred_at}>{new Date(e.occurred_at).toLocaleTimeString()}</time>
                <span className="type" title={e.type}><TopicIcon topic={e.topic} /> {typeLabel(e.type)}</span>
                <span className="what">{sentence(e, (e.creator_id && creators.get(e.creator_id)?.display_name) || null)}</span>
              </li>
            ))}
          </ol>

          <h3>Notes</h3>
          <ul className="notes" data-testid="drawer-notes">
            {detail?.notes.map((n) => (
              <li key={n.id}><div className="note-meta">{n.author_subject} · {new Date(n.created_at).toLocaleString()}</div><div className="note-body">{n.body}</div></li>
            ))}
            {detail && !detail.notes.length && <li className="muted">No notes yet.</li>}
          </ul>
          {canAct ? (
            <form className="note-form" onSubmit={(e) => void addNote(e)}>
              <label htmlFor={`${heading}-note`} className="sr-only">Add a note</label>
              <textarea id={`${heading}-note`} value={note} onChange={(e) => setNote(e.target.value)} maxLength={2000} rows={2}
                placeholder="What you found, what you did…" data-testid="note-body" />
              <button type="submit" disabled={saving || !note.trim()} data-testid="note-add">{saving ? "Adding…" : "Add note"}</button>
              {noteError && <span className="error" role="alert">{noteError}</span>}
            </form>
          ) : <p className="muted">{OPERATOR_ONLY.replace("acknowledge, resolve and assign incidents", "add notes")}.</p>}

          <h3>Notifications</h3>
          {detail && !detail.deliveries.length && <p className="muted">Nothing sent: no channel is configured for this severity.</p>}
          {detail && byChannel(detail.deliveries).map(([channel, list]) => (
            <div key={channel} className="channel-deliveries" data-testid="drawer-deliveries">
              <h4>{channel}</h4>
              <ul>
                {list.map((d) => (
                  <li key={d.id} className={`delivery ${d.status}`}>
                    <span className="transition">{d.transition}</span>
                    <span className={`dstatus ${d.status}`}>{deliveryText(d)}</span>
                    <time dateTime={d.delivered_at ?? d.created_at}>{new Date(d.delivered_at ?? d.created_at).toLocaleTimeString()}</time>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </div>
      )}
    </aside>
  );
}
