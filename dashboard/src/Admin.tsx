import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "./api";
import type {
  AuditPage, Chain, CompanyPatch, Creator, CreatorIn, CreatorPatch, LogoConfirmIn, LogoUpload, LogoUploadIn, Me, Member,
  MemberPatch, Role,
} from "./types";
import { atLeast, ROLES } from "./types";

function useLoad<T>(load: () => Promise<T>): [T | null, () => void] {
  const [value, setValue] = useState<T | null>(null);
  const reload = useCallback(() => { void load().then(setValue); }, [load]);
  useEffect(reload, [reload]);
  return [value, reload];
}

function Settings({ token, me, onChanged }: { token: string; me: Me; onChanged: () => void }) {
  const b = me.company.branding;
  const [name, setName] = useState(me.company.name);
  const [primary, setPrimary] = useState(b.primary_color ?? "#3b3b98");
  const [accent, setAccent] = useState(b.accent_color ?? "#16a085");
  const [message, setMessage] = useState("");
  async function save(e: React.FormEvent) {
    e.preventDefault();
    await api(token, "PATCH", "/company", { name, primary_color: primary, accent_color: accent } satisfies CompanyPatch);
    setMessage("Saved");
    onChanged();
  }
  async function upload(file: File) {
    try {
      const grant = await api<LogoUpload>(
        token, "POST", "/company/logo-uploads", { content_type: file.type, content_length: file.size } satisfies LogoUploadIn);
      const put = await fetch(grant.upload_url, { method: "PUT", headers: grant.headers, body: file });
      if (!put.ok) throw new Error(`upload failed (${put.status})`);
      await api(token, "POST", "/company/logo-uploads/confirm", { key: grant.key } satisfies LogoConfirmIn);
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

function Creators({ token }: { token: string }) {
  const [rows, reload] = useLoad(useCallback(() => api<Creator[]>(token, "GET", "/creators"), [token]));
  const [login, setLogin] = useState("");
  const [twitchId, setTwitchId] = useState("");
  const [error, setError] = useState("");
  async function add(e: React.FormEvent) {
    e.preventDefault();
    setError("");
    try {
      await api(token, "POST", "/creators", { login, ...(twitchId ? { twitch_user_id: twitchId } : {}) } satisfies CreatorIn);
      setLogin(""); setTwitchId(""); reload();
    } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
  }
  async function labels(row: Creator, value: string) {
    await api(token, "PATCH", `/creators/${row.id}`, { labels: value.split(",").map((l) => l.trim()).filter(Boolean) } satisfies CreatorPatch);
    reload();
  }
  return (
    <section className="card">
      <h2>Creators</h2>
      <form onSubmit={(e) => void add(e)} className="inline">
        <input placeholder="twitch login" value={login} onChange={(e) => setLogin(e.target.value)} aria-label="Twitch login" />
        <input placeholder="twitch user id (if Twitch is not connected)" value={twitchId} onChange={(e) => setTwitchId(e.target.value)} aria-label="Twitch user id" />
        <button type="submit">Add creator</button>
        {error && <span role="alert">{error}</span>}
      </form>
      <table><tbody>
        {rows?.map((r) => (
          <tr key={r.id}>
            <td>{r.display_name}</td><td>{r.twitch_login}</td>
            <td><input defaultValue={r.labels.join(", ")} aria-label={`labels of ${r.twitch_login}`} onBlur={(e) => void labels(r, e.target.value)} /></td>
            <td><button onClick={() => void api(token, "DELETE", `/creators/${r.id}`).then(reload)}>Remove</button></td>
          </tr>
        ))}
      </tbody></table>
    </section>
  );
}

function Members({ token, me }: { token: string; me: Me }) {
  const [rows, reload] = useLoad(useCallback(() => api<Member[]>(token, "GET", "/members"), [token]));
  const [error, setError] = useState("");
  const assignable = ROLES.filter((r) => me.role === "owner" || !atLeast(r, "admin"));
  async function change(row: Member, role: Role) {
    setError("");
    try { await api(token, "PATCH", `/members/${row.user_id}`, { role } satisfies MemberPatch); } catch (err) { setError(err instanceof ApiError ? err.message : "failed"); }
    reload();
  }
  return (
    <section className="card">
      <h2>Members</h2>
      {error && <p role="alert">{error}</p>}
      <table><tbody>
        {rows?.map((r) => {
          const manageable = me.role === "owner" || !atLeast(r.role, "admin");
          return (
            <tr key={r.user_id}>
              <td>{r.subject}</td><td>{r.email}</td>
              <td>{manageable ? (
                <select value={r.role} onChange={(e) => void change(r, e.target.value as Role)} aria-label={`role of ${r.subject}`}>
                  {assignable.map((x) => <option key={x}>{x}</option>)}
                </select>) : r.role}</td>
            </tr>);
        })}
      </tbody></table>
    </section>
  );
}

function AuditLog({ token }: { token: string }) {
  const [page] = useLoad(useCallback(() => api<AuditPage>(token, "GET", "/audit?limit=50"), [token]));
  const [chain] = useLoad(useCallback(() => api<Chain>(token, "GET", "/audit/verify"), [token]));
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

export function Admin({ token, me, onChanged }: { token: string; me: Me; onChanged: () => void }) {
  return (
    <section className="admin-page">
      <Settings token={token} me={me} onChanged={onChanged} />
      <Creators token={token} />
      <Members token={token} me={me} />
      <AuditLog token={token} />
    </section>
  );
}
