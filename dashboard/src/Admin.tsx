import { useCallback, useEffect, useRef, useState } from "react";
import type { Credentials } from "./api";
import { api, ApiError } from "./api";
import { AlertRules, NotificationChannels } from "./Alerts";
import { authorizationText, linkOf } from "./consent";
import type {
  AuditPage, Chain, CompanyPatch, ConnectLink, Creator, CreatorIn, CreatorPatch, Invitation, InvitationCreated, InvitationIn,
  LogoConfirmIn, LogoUpload, LogoUploadIn, Me, Member, MemberPatch, Role,
} from "./types";
import { atLeast, ROLES } from "./types";

function useLoad<T>(load: () => Promise<T>): [T | null, () => void] {
  const [value, setValue] = useState<T | null>(null);
  const reload = useCallback(() => { void load().then(setValue); }, [load]);
  useEffect(reload, [reload]);
  return [value, reload];
}

function Settings({ auth, me, onChanged }: { auth: Credentials; me: Me; onChanged: () => void }) {
  const b = me.company.branding;
  const [name, setName] = useState(me.company.name);
  const [primary, setPrimary] = useState(b.primary_color ?? "#3b3b98");
  const [accent, setAccent] = useState(b.accent_color ?? "#16a085");
  const [zone, setZone] = useState(me.company.time_zone ?? "UTC");
  const [message, setMessage] = useState("");
  async function save(e: React.FormEvent) {
    e.preventDefault();
    try {
      await api(auth, "PATCH", "/company",
        { name, primary_color: primary, accent_color: accent, time_zone: zone } satisfies CompanyPatch);
      setMessage("Saved");
      onChanged();
    } catch (err) {
      setMessage(err instanceof ApiError ? err.message : "saving failed");
    }
  }
  async function upload(file: File) {
    try {
      const grant = await api<LogoUpload>(
        auth, "POST", "/company/logo-uploads", { content_type: file.type, content_length: file.size } satisfies LogoUploadIn);
      const put = await fetch(grant.upload_url, { method: "PUT", headers: grant.headers, body: file });
      if (!put.ok) throw new Error(`upload failed (${put.status})`);
      await api(auth, "POST", "/company/logo-uploads/confirm", { key: grant.key } satisfies LogoConfirmIn);
      setMessage("Logo updated");
      onChanged();
    } catch (err) {
      setMessage(err instanceof Error ? err.message : "upload failed");
    }
  }
  return (
    <section className="card" data-testid="settings">
      <h2>Branding</h2>
      <form onSubmit={(e) => void save(e)} className="form">
        <label>Company name <input value={name} onChange={(e) => setName(e.target.value)} data-testid="brand-name" /></label>
        <label>Primary colour <input type="color" value={primary} onChange={(e) => setPrimary(e.target.value)} data-testid="brand-primary" /></label>
        <label>Accent colour <input type="color" value={accent} onChange={(e) => setAccent(e.target.value)} /></label>
        <label>Time zone (where analytics days and hours begin)
          <input list="time-zones" value={zone} onChange={(e) => setZone(e.target.value)} data-testid="brand-zone"
            autoComplete="off" spellCheck={false} />
          <datalist id="time-zones">
            {Intl.supportedValuesOf("timeZone").map((z) => <option key={z} value={z} />)}
          </datalist>
        </label>
        <label>Logo (PNG, JPEG or WebP, up to 1 MiB)
          <input type="file" accept="image/png,image/jpeg,image/webp" data-testid="brand-logo"
            onChange={(e) => { const f = e.target.files?.[0]; if (f) void upload(f); }} />
        </label>
        <button type="submit" data-testid="brand-save">Save branding</button>
        <span role="status">{message}</span>
      </form>
    </section>
  );
}

// A link to hand to someone: shown, selectable, and copied with one click.
function Copyable({ url, label, testid }: { url: string; label: string; testid: string }) {
  const [copied, setCopied] = useState(false);
  const field = useRef<HTMLInputElement>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
    } catch {
      field.current?.select(); // no clipboard permission: leave it selected for Ctrl+C
    }
  }
  return (
    <span className="copyable">
      <input readOnly value={url} aria-label={label} data-testid={testid} ref={field} onFocus={(e) => e.target.select()} />
      <button type="button" onClick={() => void copy()}>{copied ? "Copied" : "Copy"}</button>
    </span>
  );
}

function Creators({ auth, onChanged }: { auth: Credentials; onChanged: () => void }) {
  const [rows, load] = useLoad(useCallback(() => api<Creator[]>(auth, "GET", "/creators"), [auth]));
  const reload = useCallback(() => { load(); onChanged(); }, [load, onChanged]); // the wall's roster too
  const [login, setLogin] = useState("");
  const [twitchId, setTwitchId] = useState("");
  const [error, setError] = useState("");
  const [links, setLinks] = useState<Map<string, ConnectLink>>(new Map());
  // consent is given elsewhere (the creator's browser): look again every 30 s and on focus
  useEffect(() => {
    const poll = window.setInterval(load, 30_000);
    window.addEventListener("focus", load);
    return () => { window.clearInterval(poll); window.removeEventListener("focus", load); };
  }, [load]);
  async function add(e: React.FormEvent) {
    e.preventDefault();
    setError("");
    try {
      await api(auth, "POST", "/creators", { login, ...(twitchId ? { twitch_user_id: twitchId } : {}) } satisfies CreatorIn);
      setLogin(""); setTwitchId(""); reload();
    } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
  }
  async function labels(row: Creator, value: string) {
    await api(auth, "PATCH", `/creators/${row.id}`, { labels: value.split(",").map((l) => l.trim()).filter(Boolean) } satisfies CreatorPatch);
    reload();
  }
  async function connectLink(row: Creator) {
    setError("");
    try {
      const link = await api<ConnectLink>(auth, "POST", `/creators/${row.id}/connect-link`);
      setLinks((old) => new Map(old).set(row.id, link));
    } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
  }
  return (
    <section className="card" data-testid="creators">
      <h2>Creators</h2>
      <p className="muted">
        Most Twitch events (follows, subscriptions, bits, raids in, moderation…) need the creator&apos;s own
        consent: send them a connect link; it works once and expires.
      </p>
      <form onSubmit={(e) => void add(e)} className="inline">
        <input placeholder="twitch login" value={login} onChange={(e) => setLogin(e.target.value)} aria-label="Twitch login" />
        <input placeholder="twitch user id (if Twitch is not connected)" value={twitchId} onChange={(e) => setTwitchId(e.target.value)} aria-label="Twitch user id" />
        <button type="submit">Add creator</button>
        {error && <span role="alert">{error}</span>}
      </form>
      <table>
        <thead><tr><th>Creator</th><th>Login</th><th>Twitch consent</th><th>Labels</th><th /></tr></thead>
        <tbody>
          {rows?.map((r) => {
            const link = linkOf(r.authorization, r.subscriptions);
            const made = links.get(r.id);
            return (
              <tr key={r.id} data-testid={`creator-${r.twitch_login}`}>
                <td>{r.display_name}</td><td>{r.twitch_login}</td>
                <td>
                  {r.authorization && (
                    <span className={`consent ${link?.state ?? ""}`} data-testid="authorization" data-status={r.authorization.status}>
                      {authorizationText(r.authorization)}
                    </span>
                  )}
                  {link?.detail && <div className="needs" data-testid="needs">{link.detail}</div>}
                  {made && (
                    <div className="connect-link">
                      <Copyable url={made.url} label={`connect link for ${r.twitch_login}`} testid="connect-link" />
                      <span className="muted">expires {new Date(made.expires_at).toLocaleString()}</span>
                    </div>
                  )}
                </td>
                <td><input defaultValue={r.labels.join(", ")} aria-label={`labels of ${r.twitch_login}`} onBlur={(e) => void labels(r, e.target.value)} /></td>
                <td className="row-actions">
                  <button onClick={() => void connectLink(r)} data-testid="make-connect-link">Connect link</button>
                  <button onClick={() => void api(auth, "DELETE", `/creators/${r.id}`).then(reload)}>Remove</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

function Invitations({ auth, me }: { auth: Credentials; me: Me }) {
  const [rows, reload] = useLoad(useCallback(() => api<Invitation[]>(auth, "GET", "/invitations"), [auth]));
  const assignable = ROLES.filter((r) => me.role === "owner" || !atLeast(r, "admin"));
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("operator");
  const [made, setMade] = useState<InvitationCreated | null>(null);
  const [error, setError] = useState("");
  async function invite(e: React.FormEvent) {
    e.preventDefault();
    setError("");
    try {
      setMade(await api<InvitationCreated>(auth, "POST", "/invitations", { email: email.trim(), role } satisfies InvitationIn));
      setEmail("");
      reload();
    } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
  }
  async function revoke(row: Invitation) {
    setError("");
    try { await api(auth, "DELETE", `/invitations/${row.id}`); } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
    if (made?.id === row.id) setMade(null);
    reload();
  }
  return (
    <section className="card" data-testid="invitations">
      <h2>Invitations</h2>
      <form onSubmit={(e) => void invite(e)} className="inline">
        <input type="email" required placeholder="colleague@agency.example" value={email} onChange={(e) => setEmail(e.target.value)}
          aria-label="Email" data-testid="invite-email" />
        <select value={role} onChange={(e) => setRole(e.target.value as Role)} aria-label="Role" data-testid="invite-role">
          {assignable.map((r) => <option key={r}>{r}</option>)}
        </select>
        <button type="submit" data-testid="invite-send">Send invitation</button>
        {error && <span role="alert">{error}</span>}
      </form>
      {made && (
        <p role="status" className="sent" data-testid="invite-sent">
          {made.mailed
            ? `Invitation mailed to ${made.email} (${made.role}). The same link, to pass on another way: `
            : `The mail to ${made.email} could not be sent; pass this link on yourself (${made.role}): `}
          <Copyable url={made.url} label={`invitation link for ${made.email}`} testid="invite-link" />
        </p>
      )}
      <table>
        <thead><tr><th>Email</th><th>Role</th><th>Status</th><th>Sent</th><th>Expires</th><th /></tr></thead>
        <tbody>
          {rows?.map((r) => (
            <tr key={r.id} data-testid={`invitation-${r.email}`}>
              <td>{r.email}</td><td>{r.role}</td>
              <td><span className={`status ${r.status}`} data-testid="invitation-status">{r.status}</span></td>
              <td>{new Date(r.created_at).toLocaleDateString()}</td>
              <td>{r.status === "pending" ? new Date(r.expires_at).toLocaleDateString() : ""}</td>
              <td>{r.status === "pending" && <button onClick={() => void revoke(r)} data-testid="invite-revoke">Revoke</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Members({ auth, me }: { auth: Credentials; me: Me }) {
  const [rows, reload] = useLoad(useCallback(() => api<Member[]>(auth, "GET", "/members"), [auth]));
  const [error, setError] = useState("");
  const assignable = ROLES.filter((r) => me.role === "owner" || !atLeast(r, "admin"));
  async function change(row: Member, role: Role) {
    setError("");
    try { await api(auth, "PATCH", `/members/${row.user_id}`, { role } satisfies MemberPatch); } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
    reload();
  }
  async function remove(row: Member) {
    setError("");
    try { await api(auth, "DELETE", `/members/${row.user_id}`); } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
    reload();
  }
  return (
    <section className="card" data-testid="members">
      <h2>Members</h2>
      {error && <p role="alert">{error}</p>}
      <table>
        <thead><tr><th>Name</th><th>Email</th><th>Role</th><th /></tr></thead>
        <tbody>
          {rows?.map((r) => {
            const manageable = r.subject !== me.subject && (me.role === "owner" || !atLeast(r.role, "admin"));
            return (
              <tr key={r.user_id} data-testid={`member-${r.email ?? r.subject}`}>
                <td>{r.display_name ?? r.subject}</td><td>{r.email}</td>
                <td>{manageable ? (
                  <select value={r.role} onChange={(e) => void change(r, e.target.value as Role)} aria-label={`role of ${r.display_name ?? r.subject}`}>
                    {assignable.map((x) => <option key={x}>{x}</option>)}
                  </select>) : r.role}</td>
                <td>{manageable && <button onClick={() => void remove(r)} data-testid="member-remove">Remove</button>}</td>
              </tr>);
          })}
        </tbody>
      </table>
    </section>
  );
}

function AuditLog({ auth }: { auth: Credentials }) {
  const [page] = useLoad(useCallback(() => api<AuditPage>(auth, "GET", "/audit?limit=50"), [auth]));
  const [chain] = useLoad(useCallback(() => api<Chain>(auth, "GET", "/audit/verify"), [auth]));
  return (
    <section className="card">
      <h2>Audit log</h2>
      {chain && <p data-testid="chain" className={chain.intact ? "ok" : "bad"}>
        {chain.intact ? `Hash chain intact (${chain.checked} entries)` : `Hash chain broken at entry ${chain.first_bad_id}: ${chain.reason}`}
      </p>}
      <table><tbody>
        {page?.items.map((r) => (
          <tr key={r.id}><td>{r.id}</td><td>{new Date(r.occurred_at).toLocaleString()}</td><td>{r.actor_subject}</td><td>{r.action}</td><td>{r.target_type} {r.target_id}</td></tr>
        ))}
      </tbody></table>
    </section>
  );
}

export function Admin({ auth, me, onChanged }: { auth: Credentials; me: Me; onChanged: () => void }) {
  return (
    <section className="admin-page">
      <Settings auth={auth} me={me} onChanged={onChanged} />
      <Creators auth={auth} onChanged={onChanged} />
      <AlertRules auth={auth} />
      <NotificationChannels auth={auth} />
      <Invitations auth={auth} me={me} />
      <Members auth={auth} me={me} />
      <AuditLog auth={auth} />
    </section>
  );
}
