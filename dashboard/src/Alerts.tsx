// Admin: the detection rules' thresholds, and the channels incidents are posted to.
import { useCallback, useEffect, useId, useState } from "react";
import type { Credentials } from "./api";
import { api, errorText } from "./api";
import { deliveryText, SeverityIcon } from "./Incidents";
import type { Channel, ChannelIn, ChannelKind, ChannelPatch, Delivery, Rule, RuleIn, RuleSetting, Severity } from "./types";
import { SEVERITIES } from "./types";

const KINDS: { kind: ChannelKind; label: string; hint: string }[] = [
  { kind: "discord", label: "Discord", hint: "https://discord.com/api/webhooks/…" },
  { kind: "slack", label: "Slack", hint: "https://hooks.slack.com/services/…" },
  { kind: "webhook", label: "Webhook", hint: "https://your-service.example/hooks/controlroom" },
];
const TEST_POLL_MS = 1500;
const TEST_POLL_TIMES = 20;

function same(a: RuleSetting, b: RuleSetting): boolean {
  return a.enabled === b.enabled && a.severity === b.severity
    && Object.keys({ ...a.params, ...b.params }).every((k) => a.params[k] === b.params[k]);
}

function RuleRow({ auth, rule, onSaved }: { auth: Credentials; rule: Rule; onSaved: (r: Rule) => void }) {
  const id = useId();
  const [form, setForm] = useState<RuleSetting>({ enabled: rule.enabled, severity: rule.severity, params: { ...rule.params } });
  const [raw, setRaw] = useState<Record<string, string>>(() => Object.fromEntries(Object.entries(rule.params).map(([k, v]) => [k, String(v)])));
  const [error, setError] = useState("");
  const [message, setMessage] = useState("");
  const [saving, setSaving] = useState(false);
  const saved: RuleSetting = { enabled: rule.enabled, severity: rule.severity, params: rule.params };
  const dirty = !same(form, saved) || rule.param_specs.some((p) => raw[p.name] !== String(form.params[p.name]));
  const isDefault = same(form, rule.defaults);

  function param(name: string, value: string) {
    setRaw((r) => ({ ...r, [name]: value }));
    const n = Number(value);
    if (value.trim() !== "" && Number.isFinite(n)) setForm((f) => ({ ...f, params: { ...f.params, [name]: n } }));
    setMessage("");
  }
  function useDefaults() {
    setForm({ ...rule.defaults, params: { ...rule.defaults.params } });
    setRaw(Object.fromEntries(Object.entries(rule.defaults.params).map(([k, v]) => [k, String(v)])));
    setMessage("Defaults filled in; Save to apply them.");
    setError("");
  }
  async function save(e: React.FormEvent) {
    e.preventDefault();
    setError("");
    setMessage("");
    // say which field is wrong before asking the server
    for (const p of rule.param_specs) {
      const n = Number(raw[p.name]);
      if (raw[p.name]?.trim() === "" || !Number.isInteger(n) || n < p.minimum || n > p.maximum) {
        setError(`${p.label}: a whole number from ${p.minimum} to ${p.maximum}${p.unit ? ` ${p.unit}` : ""}`);
        return;
      }
    }
    setSaving(true);
    try {
      const next = await api<Rule>(auth, "PUT", `/incident-rules/${rule.rule}`, form satisfies RuleIn);
      onSaved(next);
      setForm({ enabled: next.enabled, severity: next.severity, params: { ...next.params } });
      setRaw(Object.fromEntries(Object.entries(next.params).map(([k, v]) => [k, String(v)])));
      setMessage("Saved");
    } catch (err) {
      setError(errorText(err));
    } finally {
      setSaving(false);
    }
  }
  return (
    <form noValidate className={`rule ${form.enabled ? "on" : "off"}${rule.param_specs.length > 4 ? " wide" : ""}`} onSubmit={(e) => void save(e)} data-testid={`rule-${rule.rule}`} aria-labelledby={`${id}-t`}>
      <div className="rule-head">
        <label className="toggle">
          <input type="checkbox" checked={form.enabled} onChange={(e) => { setForm({ ...form, enabled: e.target.checked }); setMessage(""); }}
            data-testid="rule-enabled" aria-describedby={`${id}-d`} />
          <span id={`${id}-t`} className="rule-title">{rule.title}</span>
          <span className="sr-only">{form.enabled ? "enabled" : "disabled"}</span>
        </label>
        <label className="rule-sev">
          <span className="sr-only">Severity of {rule.title}</span>
          <SeverityIcon severity={form.severity} />
          <select value={form.severity} onChange={(e) => { setForm({ ...form, severity: e.target.value as Severity }); setMessage(""); }} data-testid="rule-severity">
            {SEVERITIES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
      </div>
      <p id={`${id}-d`} className="muted rule-desc">{rule.description}</p>
      {rule.param_specs.length > 0 && (
        <div className="params">
          {rule.param_specs.map((p) => (
            <label key={p.name} className="param">
              <span>{p.label}</span>
              <span className="param-input">
                <input type="number" inputMode="numeric" min={p.minimum} max={p.maximum} step={1} value={raw[p.name] ?? ""}
                  onChange={(e) => param(p.name, e.target.value)} data-testid={`param-${p.name}`}
                  aria-describedby={`${id}-${p.name}-r`} />
                {p.unit && <span className="unit">{p.unit}</span>}
              </span>
              <span id={`${id}-${p.name}-r`} className="range">{p.minimum}–{p.maximum}{rule.defaults.params[p.name] !== undefined ? `, default ${rule.defaults.params[p.name]}` : ""}</span>
            </label>
          ))}
        </div>
      )}
      <div className="rule-actions">
        <button type="submit" className="primary" disabled={!dirty || saving} data-testid="rule-save">{saving ? "Saving…" : "Save"}</button>
        <button type="button" onClick={useDefaults} disabled={isDefault} data-testid="rule-defaults">Reset to defaults</button>
        <span role="status" className="ok-text" data-testid="rule-message">{message}</span>
        {error && <span role="alert" className="error" data-testid="rule-error">{error}</span>}
      </div>
    </form>
  );
}

export function AlertRules({ auth }: { auth: Credentials }) {
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api<Rule[]>(auth, "GET", "/incident-rules").then(setRules, (err) => setError(errorText(err)));
  }, [auth]);
  const saved = useCallback((r: Rule) => setRules((old) => old?.map((x) => (x.rule === r.rule ? r : x)) ?? null), []);
  return (
    <section className="card" data-testid="alert-rules" aria-labelledby="alert-rules-h">
      <h2 id="alert-rules-h">Alert rules</h2>
      <p className="muted">What opens an incident, for every creator of the company. docs/incidents.md explains each default and where its numbers come from.</p>
      {error && <p role="alert" className="error">{error}</p>}
      {!rules && !error && <p className="muted">Loading…</p>}
      <div className="rules">
        {rules?.map((r) => <RuleRow key={r.rule} auth={auth} rule={r} onSaved={saved} />)}
      </div>
    </section>
  );
}

export function KindIcon({ kind }: { kind: ChannelKind }) {
  const label = KINDS.find((k) => k.kind === kind)?.label ?? kind;
  return (
    <span className={`kind ${kind}`}>
      <svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
        {kind === "discord" && <path d="M3 3.5 Q8 1.8 13 3.5 L14.5 11 Q12 13.5 10 13 L9.3 11.6 Q8 12 6.7 11.6 L6 13 Q4 13.5 1.5 11 Z M5.7 8.2 a1 1 0 1 0 .01 0 M10.3 8.2 a1 1 0 1 0 .01 0" />}
        {kind === "slack" && <><rect x="2" y="6" width="12" height="2.6" rx="1.3" /><rect x="6" y="2" width="2.6" height="12" rx="1.3" /><rect x="2" y="10" width="5" height="2.6" rx="1.3" /><rect x="9.4" y="2" width="2.6" height="5" rx="1.3" /></>}
        {kind === "webhook" && <><circle cx="4" cy="11.5" r="2.3" /><circle cx="12" cy="11.5" r="2.3" /><circle cx="8" cy="4" r="2.3" /><path d="M4 11.5 8 4 12 11.5Z" fill="none" strokeWidth="1.4" /></>}
      </svg>
      {label}
    </span>
  );
}

function quietText(q: Channel["quiet_hours"]): string {
  return q ? `${q.start}–${q.end} ${q.timezone}` : "none";
}

function localZone(): string {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch { return "UTC"; }
}

interface Draft {
  kind: ChannelKind; name: string; url: string; secret: string; min_severity: Severity;
  quiet: boolean; start: string; end: string; timezone: string; mention: string; enabled: boolean;
}

function draftOf(c: Channel | null): Draft {
  return {
    kind: c?.kind ?? "discord", name: c?.name ?? "", url: "", secret: "", min_severity: c?.min_severity ?? "warning",
    quiet: Boolean(c?.quiet_hours), start: c?.quiet_hours?.start ?? "22:00", end: c?.quiet_hours?.end ?? "07:00",
    timezone: c?.quiet_hours?.timezone ?? localZone(), mention: c?.mention ?? "", enabled: c?.enabled ?? true,
  };
}

function ChannelForm({ auth, editing, onDone }: { auth: Credentials; editing: Channel | null; onDone: (saved: Channel | null) => void }) {
  const id = useId();
  const [d, setD] = useState<Draft>(() => draftOf(editing));
  const [error, setError] = useState("");
  const [saving, setSaving] = useState(false);
  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setD((old) => ({ ...old, [k]: v }));
  const kind = KINDS.find((k) => k.kind === d.kind)!;
  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setError("");
    const quiet_hours = d.quiet ? { start: d.start, end: d.end, timezone: d.timezone.trim() || "UTC" } : null;
    const mention = d.kind !== "webhook" && d.mention.trim() ? d.mention.trim() : null;
    setSaving(true);
    try {
      let saved: Channel;
      if (editing) {
        const patch: ChannelPatch = { name: d.name.trim(), min_severity: d.min_severity, quiet_hours, mention, enabled: d.enabled };
        if (d.url.trim()) patch.url = d.url.trim(); // empty: the sealed URL stays as it is
        if (d.secret.trim()) patch.secret = d.secret.trim();
        saved = await api<Channel>(auth, "PATCH", `/notification-channels/${editing.id}`, patch);
      } else {
        const body: ChannelIn = {
          kind: d.kind, name: d.name.trim(), url: d.url.trim(), min_severity: d.min_severity, quiet_hours, mention, enabled: d.enabled,
          ...(d.kind === "webhook" && d.secret.trim() ? { secret: d.secret.trim() } : {}),
        };
        saved = await api<Channel>(auth, "POST", "/notification-channels", body);
      }
      onDone(saved);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setSaving(false);
    }
  }
  return (
    <form className="channel-form" onSubmit={(e) => void submit(e)} data-testid="channel-form" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>{editing ? `Edit ${editing.name}` : "Add a channel"}</h3>
      <div className="form-grid">
        <label>Kind
          <select value={d.kind} onChange={(e) => set("kind", e.target.value as ChannelKind)} disabled={Boolean(editing)} data-testid="channel-kind">
            {KINDS.map((k) => <option key={k.kind} value={k.kind}>{k.label}</option>)}
          </select>
        </label>
        <label>Name
          <input required maxLength={100} value={d.name} onChange={(e) => set("name", e.target.value)} placeholder="#alerts on the agency server" data-testid="channel-name" />
        </label>
        <label className="wide">Webhook URL
          <input type="url" required={!editing} maxLength={500} value={d.url} onChange={(e) => set("url", e.target.value)} autoComplete="off"
            placeholder={editing ? `unchanged (${editing.url_hint}); type a new URL to replace it` : kind.hint} data-testid="channel-url"
            aria-describedby={`${id}-url`} />
          <span id={`${id}-url`} className="hint">Stored encrypted and never shown again, only a masked hint.</span>
        </label>
        {d.kind === "webhook" && (
          <label className="wide">Signing secret (optional)
            <input type="password" maxLength={200} value={d.secret} onChange={(e) => set("secret", e.target.value)} autoComplete="new-password"
              placeholder={editing?.has_secret ? "unchanged; type a new one to replace it" : "whsec_… (Standard Webhooks)"} data-testid="channel-secret" />
          </label>
        )}
        {d.kind !== "webhook" && (
          <label>Mention (optional)
            <input maxLength={100} value={d.mention} onChange={(e) => set("mention", e.target.value)} data-testid="channel-mention"
              placeholder={d.kind === "discord" ? "a role id (123456789012345678), here or everyone" : "<!here>, <!channel> or <!subteam^ID>"} />
          </label>
        )}
        <label>Minimum severity
          <select value={d.min_severity} onChange={(e) => set("min_severity", e.target.value as Severity)} data-testid="channel-min-severity">
            {SEVERITIES.map((s) => <option key={s} value={s}>{s} and above</option>)}
          </select>
        </label>
        <fieldset className="wide quiet">
          <legend>
            <label><input type="checkbox" checked={d.quiet} onChange={(e) => set("quiet", e.target.checked)} data-testid="channel-quiet" /> Quiet hours</label>
          </legend>
          {d.quiet && (
            <div className="inline">
              <label>From <input type="time" value={d.start} onChange={(e) => set("start", e.target.value)} required /></label>
              <label>to <input type="time" value={d.end} onChange={(e) => set("end", e.target.value)} required /></label>
              <label>Time zone <input value={d.timezone} onChange={(e) => set("timezone", e.target.value)} placeholder="Europe/Berlin" /></label>
            </div>
          )}
          <span className="hint">Warning and info alerts are held back then; critical ones always go out.</span>
        </fieldset>
        <label className="check"><input type="checkbox" checked={d.enabled} onChange={(e) => set("enabled", e.target.checked)} data-testid="channel-enabled" /> Enabled</label>
      </div>
      <div className="rule-actions">
        <button type="submit" className="primary" disabled={saving} data-testid="channel-save">{saving ? "Saving…" : editing ? "Save channel" : "Add channel"}</button>
        <button type="button" onClick={() => onDone(null)}>Cancel</button>
        {error && <span role="alert" className="error" data-testid="channel-error">{error}</span>}
      </div>
    </form>
  );
}

function DeliveryLog({ auth, channel }: { auth: Credentials; channel: Channel }) {
  const [rows, setRows] = useState<Delivery[] | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(() => {
    api<Delivery[]>(auth, "GET", `/notification-channels/${channel.id}/deliveries?limit=25`).then(setRows, (err) => setError(errorText(err)));
  }, [auth, channel.id]);
  useEffect(load, [load]);
  return (
    <div className="delivery-log" data-testid="delivery-log">
      <div className="inline"><strong>Recent deliveries</strong><button type="button" onClick={load}>Refresh</button></div>
      {error && <p role="alert" className="error">{error}</p>}
      {rows && !rows.length && <p className="muted">Nothing sent yet.</p>}
      {rows && rows.length > 0 && (
        <table>
          <thead><tr><th>When</th><th>What</th><th>Result</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{new Date(r.created_at).toLocaleString()}</td>
                <td>{r.transition}{r.incident_id ? "" : " (test)"}</td>
                <td><span className={`dstatus ${r.status}`}>{deliveryText(r)}</span></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function TestButton({ auth, channel }: { auth: Credentials; channel: Channel }) {
  const [result, setResult] = useState<{ text: string; ok: boolean | null } | null>(null);
  async function test() {
    setResult({ text: "Sending…", ok: null });
    try {
      let d = await api<Delivery>(auth, "POST", `/notification-channels/${channel.id}/test`);
      // the post goes through the queue: look at its delivery until it has an outcome
      for (let n = 0; n < TEST_POLL_TIMES && (d.status === "pending" || d.status === "sending"); n++) {
        setResult({ text: `Queued (${d.status})…`, ok: null });
        await new Promise((r) => setTimeout(r, TEST_POLL_MS));
        const log = await api<Delivery[]>(auth, "GET", `/notification-channels/${channel.id}/deliveries?limit=10`);
        d = log.find((x) => x.id === d.id) ?? d;
      }
      const done = d.status === "delivered";
      setResult({ text: done ? `Delivered${d.last_status ? ` (HTTP ${d.last_status})` : ""}` : deliveryText(d), ok: done ? true : d.status === "pending" || d.status === "sending" ? null : false });
    } catch (err) {
      setResult({ text: errorText(err), ok: false });
    }
  }
  return (
    <>
      <button type="button" onClick={() => void test()} aria-label={`Send a test to ${channel.name}`} data-testid="channel-test">Send test</button>
      {result && <span role="status" className={`test-result ${result.ok === true ? "ok" : result.ok === false ? "bad" : ""}`} data-testid="channel-test-result">{result.text}</span>}
    </>
  );
}

export function NotificationChannels({ auth }: { auth: Credentials }) {
  const [rows, setRows] = useState<Channel[] | null>(null);
  const [error, setError] = useState("");
  const [editing, setEditing] = useState<Channel | "new" | null>(null);
  const [log, setLog] = useState<string | null>(null);
  const load = useCallback(() => {
    api<Channel[]>(auth, "GET", "/notification-channels").then((r) => { setRows(r); setError(""); }, (err) => setError(errorText(err)));
  }, [auth]);
  useEffect(load, [load]);
  async function remove(c: Channel) {
    if (!window.confirm(`Delete the channel "${c.name}"? Alerts stop going there; its delivery log goes too.`)) return;
    setError("");
    try { await api(auth, "DELETE", `/notification-channels/${c.id}`); } catch (err) { setError(errorText(err)); }
    load();
  }
  return (
    <section className="card" data-testid="notification-channels" aria-labelledby="channels-h">
      <div className="card-head">
        <h2 id="channels-h">Notification channels</h2>
        {editing === null && <button type="button" className="primary" onClick={() => setEditing("new")} data-testid="channel-add">Add channel</button>}
      </div>
      <p className="muted">Where incidents are posted: Discord and Slack incoming webhooks, or your own HTTPS endpoint (signed, Standard Webhooks).</p>
      {error && <p role="alert" className="error">{error}</p>}
      {editing !== null && (
        <ChannelForm key={editing === "new" ? "new" : editing.id} auth={auth} editing={editing === "new" ? null : editing}
          onDone={(saved) => { setEditing(null); if (saved) load(); }} />
      )}
      {rows && !rows.length && <p className="muted" data-testid="channels-empty">No channels yet: incidents show on the wall only.</p>}
      {rows && rows.length > 0 && (
        <table className="channels">
          <thead><tr><th>Kind</th><th>Name</th><th>URL</th><th>Minimum</th><th>Quiet hours</th><th>State</th><th /></tr></thead>
          <tbody>
            {rows.map((c) => (
              <ChannelRow key={c.id} c={c} auth={auth} showLog={log === c.id}
                onLog={() => setLog(log === c.id ? null : c.id)} onEdit={() => setEditing(c)} onDelete={() => void remove(c)} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function ChannelRow({ c, auth, showLog, onLog, onEdit, onDelete }: {
  c: Channel; auth: Credentials; showLog: boolean; onLog: () => void; onEdit: () => void; onDelete: () => void;
}) {
  return (
    <>
      <tr data-testid={`channel-${c.name}`}>
        <td><KindIcon kind={c.kind} /></td>
        <td>{c.name}{c.mention && <div className="muted">mentions {c.mention}</div>}</td>
        <td><code className="url-hint" data-testid="channel-url-hint">{c.url_hint}</code>{c.has_secret && <div className="muted">signed</div>}</td>
        <td><span className={`sev ${c.min_severity}`}><SeverityIcon severity={c.min_severity} />{c.min_severity}+</span></td>
        <td>{quietText(c.quiet_hours)}</td>
        <td><span className={`status ${c.enabled ? "accepted" : "expired"}`}>{c.enabled ? "enabled" : "paused"}</span></td>
        <td className="row-actions">
          <TestButton auth={auth} channel={c} />
          <button type="button" onClick={onLog} aria-expanded={showLog} data-testid="channel-log">Deliveries</button>
          <button type="button" onClick={onEdit} data-testid="channel-edit">Edit</button>
          <button type="button" className="danger" onClick={onDelete} aria-label={`Delete ${c.name}`} data-testid="channel-delete">Delete</button>
        </td>
      </tr>
      {showLog && <tr className="log-row"><td colSpan={7}><DeliveryLog auth={auth} channel={c} /></td></tr>}
    </>
  );
}
